// The course's socket word count (§2.2) on Apache Flink, for benches/compare.rs: lines from
// 127.0.0.1:<port> (Flink's socketTextStream, one reader as Spark's receiver), split on " ",
// (word, 1), keyBy word, 1-second tumbling processing-time windows (Flink's counterpart of a
// 1 s micro-batch), summed, discarded. Runs Flink's local mini-cluster in this JVM with
// parallelism 2 (the machine's 2 cores, as Spark's local[2]).
//
//   java -cp 'pyflink/lib/*:.' FlinkWordCount <port>
//
// It runs until it is killed; the benchmark reads how far its sender fell behind (TCP flow
// control holds the sender back when Flink cannot keep up).
import java.time.Duration;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.streaming.api.windowing.assigners.TumblingProcessingTimeWindows;
import org.apache.flink.util.Collector;

public class FlinkWordCount {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(2);
        env.socketTextStream("127.0.0.1", port)
            .flatMap((String line, Collector<Tuple2<String, Long>> out) -> {
                for (String w : line.split(" ")) out.collect(Tuple2.of(w, 1L));
            })
            .returns(Types.TUPLE(Types.STRING, Types.LONG))
            .keyBy(t -> t.f0)
            .window(TumblingProcessingTimeWindows.of(Duration.ofSeconds(1)))
            .sum(1)
            .sinkTo(new DiscardingSink<>());
        System.out.println("flink: job submitted");
        env.execute("sluice-compare-flink-wordcount");
    }
}
