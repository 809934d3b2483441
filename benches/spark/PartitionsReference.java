// Prints, from Spark itself, the partitions that sluice's conformance tests expect where Spark's
// placement shows: `repartition(n)` of `parallelize(seq, m)` (each output partition's records,
// sorted). Run by benches/spark/partitions.sh; its output is the literal in
// tests/conformance.rs (`spark_repartition_*`).
import java.util.ArrayList;
import java.util.List;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;

public class PartitionsReference {
    static List<Integer> range(int from, int to) {
        List<Integer> xs = new ArrayList<>();
        for (int i = from; i <= to; i++) xs.add(i);
        return xs;
    }

    static void show(JavaSparkContext sc, String label, int from, int to, int slices, int n) {
        JavaRDD<Integer> rdd = sc.parallelize(range(from, to), slices).repartition(n);
        List<List<Integer>> parts = rdd.glom().collect();
        StringBuilder out = new StringBuilder(label + "\t");
        for (List<Integer> p : parts) {
            List<Integer> sorted = new ArrayList<>(p);
            java.util.Collections.sort(sorted);
            out.append(sorted).append(";");
        }
        System.out.println(out);
    }

    public static void main(String[] args) {
        SparkConf conf = new SparkConf().setMaster("local[2]").setAppName("partitions-reference");
        try (JavaSparkContext sc = new JavaSparkContext(conf)) {
            sc.setLogLevel("ERROR");
            for (int[] b : new int[][] {{1, 100}, {101, 200}, {201, 300}}) {
                show(sc, "more " + b[0], b[0], b[1], 2, 5);
                show(sc, "fewer " + b[0], b[0], b[1], 5, 2);
            }
        }
    }
}
