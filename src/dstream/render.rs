//! Records rendered as Spark prints them (Scala's `toString`).
//!
//! Tuples are `(hello,1)` with no spaces and strings unquoted; `Option` is `Some(x)`/`None`;
//! a `Vec` (the values of `group_by_key`, `cogroup`) is `CompactBuffer(1, 2)` as Spark's
//! grouped values print; whole-number floats keep `.0` (`2.0`), as Scala's `Double` does.

use std::fmt::Write;

/// How a record looks in `print` and `save_as_text_files`.
///
/// # Examples
///
/// ```
/// use sluice::dstream::render::SparkDisplay;
/// assert_eq!(("hello".to_owned(), 1u64).to_spark_string(), "(hello,1)");
/// assert_eq!(("a", (Some(1), None::<i32>)).to_spark_string(), "(a,(Some(1),None))");
/// assert_eq!(vec![1, 2].to_spark_string(), "CompactBuffer(1, 2)");
/// assert_eq!(2.0f64.to_spark_string(), "2.0");
/// ```
pub trait SparkDisplay {
    /// Appends the Scala rendering of `self` to `out`.
    fn write_spark(&self, out: &mut String);

    /// The Scala rendering of `self`.
    fn to_spark_string(&self) -> String {
        let mut s = String::new();
        self.write_spark(&mut s);
        s
    }
}

macro_rules! display_as_is {
    ($($t:ty),*) => {$(
        impl SparkDisplay for $t {
            fn write_spark(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
display_as_is!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, bool, char, str, String
);
// The words of the course's word counts (`sluice::CompactString`).
display_as_is!(compact_str::CompactString);

macro_rules! display_float {
    ($($t:ty),*) => {$(
        impl SparkDisplay for $t {
            fn write_spark(&self, out: &mut String) {
                if self.is_finite() && self.fract() == 0.0 && self.abs() < 1e7 {
                    let _ = write!(out, "{self:.1}");
                } else if self.is_nan() {
                    out.push_str("NaN");
                } else if self.is_infinite() {
                    out.push_str(if *self > 0.0 { "Infinity" } else { "-Infinity" });
                } else {
                    let _ = write!(out, "{self}");
                }
            }
        }
    )*};
}
display_float!(f32, f64);

impl<T: SparkDisplay + ?Sized> SparkDisplay for &T {
    fn write_spark(&self, out: &mut String) {
        (**self).write_spark(out)
    }
}

impl SparkDisplay for () {
    fn write_spark(&self, out: &mut String) {
        out.push_str("()");
    }
}

impl<T: SparkDisplay> SparkDisplay for Option<T> {
    fn write_spark(&self, out: &mut String) {
        match self {
            Some(x) => {
                out.push_str("Some(");
                x.write_spark(out);
                out.push(')');
            }
            None => out.push_str("None"),
        }
    }
}

impl<T: SparkDisplay> SparkDisplay for Vec<T> {
    fn write_spark(&self, out: &mut String) {
        out.push_str("CompactBuffer(");
        for (i, x) in self.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            x.write_spark(out);
        }
        out.push(')');
    }
}

macro_rules! display_tuple {
    ($($name:ident),+) => {
        impl<$($name: SparkDisplay),+> SparkDisplay for ($($name,)+) {
            #[allow(non_snake_case)]
            fn write_spark(&self, out: &mut String) {
                let ($($name,)+) = self;
                out.push('(');
                let mut first = true;
                $(
                    if !first { out.push(','); }
                    first = false;
                    $name.write_spark(out);
                )+
                let _ = first;
                out.push(')');
            }
        }
    };
}
display_tuple!(A, B);
display_tuple!(A, B, C);
display_tuple!(A, B, C, D);
display_tuple!(A, B, C, D, E);
display_tuple!(A, B, C, D, E, F);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scala_rendering() {
        assert_eq!(
            ("k".to_owned(), (1, Some("x".to_owned()))).to_spark_string(),
            "(k,(1,Some(x)))"
        );
        assert_eq!((1, 2, 3).to_spark_string(), "(1,2,3)");
        assert_eq!(1.5f64.to_spark_string(), "1.5");
        assert_eq!(Vec::<u8>::new().to_spark_string(), "CompactBuffer()");
        assert_eq!(f64::NAN.to_spark_string(), "NaN");
    }
}
