// The scenarios of benches/state_window.rs on Spark Streaming itself, for a side-by-side run on
// the same machine (benches/spark/run.sh compiles and submits this with the pyspark wheel's
// Spark). Prints one line per completed batch: processing and scheduling delay in ms.
//
//   state <batches>        updateStateByKey: 1 000 000 keys in the first batch, then 10 000 per batch
//   mapwithstate <batches> mapWithState, same input
//   window <batches>       reduceByKeyAndWindow, 60 s window, 1 s slide, 1 000 000 words per batch
//   windowinv <batches>    the same with an inverse function
//   sql <batches>          the course's StreamingIntegerationSQL (§6): 100 000 sales lines per batch
//                          (`id brand<k> category<k % 20>`, 1 000 brands), updateStateByKey,
//                          then the top-3 SQL with row_number() and show() on every batch
//   socket <batches> <port> the course's network word count (§2.2) on socketTextStream from
//                          127.0.0.1:<port>: flatMap(split(" ")), (w, 1), reduceByKey, count
import java.util.*;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.*;
import org.apache.spark.api.java.Optional;
import org.apache.spark.streaming.*;
import org.apache.spark.streaming.api.java.*;
import org.apache.spark.streaming.dstream.ConstantInputDStream;
import org.apache.spark.streaming.scheduler.*;
import scala.Tuple2;

public class SluiceCompare {
    static final int KEYS = 1_000_000, UPDATED = 10_000, VOCABULARY = 10_000, WORDS = 1_000_000;

    public static void main(String[] args) throws Exception {
        String mode = args[0];
        int batches = Integer.parseInt(args[1]);
        SparkConf conf = new SparkConf().setAppName("sluice-compare-" + mode).setMaster("local[2]")
            .set("spark.ui.enabled", "false");
        JavaStreamingContext ssc = new JavaStreamingContext(conf, Durations.seconds(1));
        ssc.sparkContext().setLogLevel("WARN");
        ssc.checkpoint(System.getProperty("java.io.tmpdir") + "/sluice-compare-chk-" + System.nanoTime());
        final long started = System.currentTimeMillis();
        final java.util.concurrent.atomic.AtomicInteger done = new java.util.concurrent.atomic.AtomicInteger();
        ssc.addStreamingListener(new StreamingListener() {
            @Override public void onBatchCompleted(StreamingListenerBatchCompleted e) {
                BatchInfo b = e.batchInfo();
                System.out.println("batch " + b.batchTime().milliseconds() + " records " + b.numRecords()
                    + " processing_ms " + b.processingDelay().get() + " scheduling_ms " + b.schedulingDelay().get()
                    + " since_start_ms " + (System.currentTimeMillis() - started));
                done.incrementAndGet();
            }
            @Override public void onStreamingStarted(StreamingListenerStreamingStarted e) {}
            @Override public void onReceiverStarted(StreamingListenerReceiverStarted e) {}
            @Override public void onReceiverError(StreamingListenerReceiverError e) {}
            @Override public void onReceiverStopped(StreamingListenerReceiverStopped e) {}
            @Override public void onBatchSubmitted(StreamingListenerBatchSubmitted e) {}
            @Override public void onBatchStarted(StreamingListenerBatchStarted e) {}
            @Override public void onOutputOperationStarted(StreamingListenerOutputOperationStarted e) {}
            @Override public void onOutputOperationCompleted(StreamingListenerOutputOperationCompleted e) {}
        });
        if (mode.startsWith("socket")) {
            // The course's socket jobs (benches/compare.rs): the word count, the running word
            // count (updateStateByKey) and the windowed one (3 s window, 2 s slide).
            int port = Integer.parseInt(args[2]);
            JavaPairDStream<String, Long> ones = ssc.socketTextStream("127.0.0.1", port)
                .flatMap(line -> Arrays.asList(line.split(" ")).iterator())
                .mapToPair(w -> new Tuple2<>(w, 1L));
            if (mode.equals("socket-state")) {
                ones.updateStateByKey((List<Long> vs, Optional<Long> old) -> {
                    long sum = old.orElse(0L);
                    for (long v : vs) sum += v;
                    return Optional.of(sum);
                }).foreachRDD(rdd -> { rdd.count(); });
            } else if (mode.equals("socket-window")) {
                ones.reduceByKeyAndWindow((a, b) -> a + b, Durations.seconds(3), Durations.seconds(2))
                    .foreachRDD(rdd -> { rdd.count(); });
            } else {
                ones.reduceByKey((a, b) -> a + b).foreachRDD(rdd -> { rdd.count(); });
            }
        } else if (mode.equals("sql")) {
            SparkSession spark = SparkSession.builder().config(ssc.sparkContext().getConf()).getOrCreate();
            JavaRDD<Integer> slices = ssc.sparkContext().parallelize(Arrays.asList(0, 1), 2);
            JavaRDD<String> lines = slices.flatMap(p -> {
                Random r = new Random();
                List<String> out = new ArrayList<>(50_000);
                for (int i = 0; i < 50_000; i++) {
                    int k = r.nextInt(1000);
                    out.add(i + " brand" + k + " category" + (k % 20));
                }
                return out.iterator();
            });
            JavaDStream<String> stream = new JavaDStream<>(
                new ConstantInputDStream<>(ssc.ssc(), lines.rdd(), scala.reflect.ClassTag$.MODULE$.apply(String.class)),
                scala.reflect.ClassTag$.MODULE$.apply(String.class));
            JavaPairDStream<String, Integer> pairs = stream.mapToPair(line -> {
                String[] f = line.split("\\s+");
                return f.length != 3 ? new Tuple2<>("", -1) : new Tuple2<>(f[2] + "_" + f[1], 1);
            }).filter(t -> t._2() != -1);
            JavaPairDStream<String, Integer> usb = pairs.updateStateByKey((List<Integer> vs, Optional<Integer> old) -> {
                int sum = old.orElse(0);
                for (int v : vs) sum += v;
                return Optional.of(sum);
            });
            StructType schema = new StructType().add("category", "string").add("brand", "string").add("sales", "int");
            usb.foreachRDD((rdd, time) -> {
                if (!rdd.isEmpty()) {
                    JavaRDD<Row> rows = rdd.map(t -> {
                        int i = t._1().indexOf("_");
                        return RowFactory.create(t._1().substring(0, i), t._1().substring(i + 1), t._2());
                    });
                    Dataset<Row> df = spark.createDataFrame(rows, schema);
                    df.createOrReplaceTempView("tmp_category_brand_sales");
                    spark.sql("select t.category, t.brand, t.sales, t.rank from (select category, brand, sales, "
                        + "row_number() over (partition by category order by sales desc, brand) as rank "
                        + "from tmp_category_brand_sales) t where t.rank < 4 order by t.category, t.rank").show();
                }
            });
        } else if (mode.equals("state") || mode.equals("mapwithstate")) {
            Queue<JavaRDD<Tuple2<Long, Long>>> queue = new LinkedList<>();
            List<Tuple2<Long, Long>> all = new ArrayList<>(KEYS);
            for (long k = 0; k < KEYS; k++) all.add(new Tuple2<>(k, 1L));
            queue.add(ssc.sparkContext().parallelize(all, 2));
            for (int i = 1; i < batches; i++) {
                List<Tuple2<Long, Long>> some = new ArrayList<>(UPDATED);
                long from = ((long) i * 7919 * UPDATED) % KEYS;
                for (long j = 0; j < UPDATED; j++) some.add(new Tuple2<>((from + j) % KEYS, 1L));
                queue.add(ssc.sparkContext().parallelize(some, 2));
            }
            JavaPairDStream<Long, Long> pairs = ssc.queueStream(queue).mapToPair(t -> t);
            if (mode.equals("state")) {
                pairs.updateStateByKey((List<Long> vs, Optional<Long> old) -> {
                    long sum = old.orElse(0L);
                    for (long v : vs) sum += v;
                    return Optional.of(sum);
                }).foreachRDD(rdd -> { rdd.count(); });
            } else {
                pairs.mapWithState(StateSpec.function((Long k, Optional<Long> v, State<Long> s) -> {
                    long n = (s.exists() ? s.get() : 0L) + v.orElse(0L);
                    s.update(n);
                    return n;
                })).foreachRDD(rdd -> { rdd.count(); });
            }
        } else {
            // 1 000 000 random words per batch, generated in the tasks (not cached), as sluice's
            // generator does.
            JavaRDD<Integer> slices = ssc.sparkContext().parallelize(Arrays.asList(0, 1), 2);
            JavaRDD<String> words = slices.flatMap(p -> {
                Random r = new Random();
                List<String> out = new ArrayList<>(WORDS / 2);
                for (int i = 0; i < WORDS / 2; i++) out.add("w" + r.nextInt(VOCABULARY));
                return out.iterator();
            });
            JavaDStream<String> stream = new JavaDStream<>(
                new ConstantInputDStream<>(ssc.ssc(), words.rdd(), scala.reflect.ClassTag$.MODULE$.apply(String.class)),
                scala.reflect.ClassTag$.MODULE$.apply(String.class));
            JavaPairDStream<String, Long> ones = stream.mapToPair(w -> new Tuple2<>(w, 1L));
            JavaPairDStream<String, Long> counts = mode.equals("windowinv")
                ? ones.reduceByKeyAndWindow((a, b) -> a + b, (a, b) -> a - b, Durations.seconds(60), Durations.seconds(1), 2, t -> t._2() > 0)
                : ones.reduceByKeyAndWindow((a, b) -> a + b, Durations.seconds(60), Durations.seconds(1));
            counts.foreachRDD(rdd -> { rdd.count(); });
        }
        ssc.start();
        // Until `batches` batches completed, or their time and 15 s more.
        long deadline = System.currentTimeMillis() + (batches + 15) * 1000L;
        while (done.get() < batches && System.currentTimeMillis() < deadline) {
            ssc.awaitTerminationOrTimeout(200);
        }
        ssc.stop(true, false);
    }
}
