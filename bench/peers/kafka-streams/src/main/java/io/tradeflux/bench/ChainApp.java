package io.tradeflux.bench;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tradeflux.bench.PositionsApp.Position;
import io.tradeflux.bench.PositionsApp.PositionsProcessor;
import io.tradeflux.bench.PositionsApp.Trade;
import java.io.IOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Utils;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.processor.StreamPartitioner;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * tradeflux's core pipeline as three Kafka Streams hops (bench/latency.py's peer).
 *
 * <p>The same topics as tradeflux's validator, positions and pnl services, each hop a
 * sub-topology that reads the previous hop's output topic read_committed, all in one
 * application (one stream thread, exactly_once_v2: one transaction per commit covers
 * every task):
 *
 * <ol>
 *   <li>{@code RAW} (TradeEvent JSON keyed by trade id) → validation: decode, check the
 *       fields, drop a version not above the trade's last (an in-memory store keyed by
 *       trade id, change-logged, as tradeflux's validator keeps one), and pass the raw
 *       bytes on keyed by account → {@code ENRICHED}. No reference data: passthrough.
 *   <li>{@code ENRICHED} → {@link PositionsProcessor} (bench/compare.py's fold, average
 *       cost, BigDecimal in Python's default context) → {@code POSITIONS} keyed
 *       {@code account|instrument}, in the partition of the account (as tradeflux puts
 *       them), one Position per trade.
 *   <li>{@code POSITIONS} → a per-account aggregate (positions held, trades in them,
 *       realized P&L per currency), updated per position → {@code PNL} keyed by account.
 * </ol>
 *
 * <p>Usage: java -cp positions-kafka-streams.jar io.tradeflux.bench.ChainApp BOOTSTRAP RAW
 * ENRICHED POSITIONS PNL APPLICATION_ID STATE_DIR [COMMIT_INTERVAL_MS|default [KEY=VALUE...]]
 * (more StreamsConfig settings, prefixed {@code producer.} or {@code consumer.} for a client).
 */
public final class ChainApp {

  private ChainApp() {}

  /** The fields of a raw TradeEvent the validation checks. */
  @JsonIgnoreProperties(ignoreUnknown = true)
  public static final class RawTrade {
    @JsonProperty("event_type") public String eventType;
    @JsonProperty("trade_id") public String tradeId;
    @JsonProperty("version") public int version;
    @JsonProperty("account") public String account;
    @JsonProperty("instrument") public String instrument;
    @JsonProperty("side") public String side;
    @JsonProperty("quantity") public BigDecimal quantity;
    @JsonProperty("price") public BigDecimal price;
    @JsonProperty("currency") public String currency;
    @JsonProperty("trade_time") public String tradeTime;

    boolean valid() {
      return "NEW".equals(eventType) && notBlank(tradeId) && version >= 1 && notBlank(account)
          && notBlank(instrument) && ("BUY".equals(side) || "SELL".equals(side))
          && quantity != null && quantity.signum() > 0 && price != null && price.signum() > 0
          && notBlank(currency) && notBlank(tradeTime);
    }

    private static boolean notBlank(String s) {
      return s != null && !s.isEmpty();
    }
  }

  /** Per account: the positions it holds, the trades in them, realized P&L per currency. */
  @JsonIgnoreProperties(ignoreUnknown = true)
  @JsonPropertyOrder({"account", "positions", "trade_count", "realized"})
  public static final class AccountAggregate {
    @JsonProperty("account") public String account;
    @JsonProperty("positions") public int positions;
    @JsonProperty("trade_count") public long tradeCount;
    /** Decimals as strings, as tradeflux writes them; sorted by currency. */
    @JsonProperty("realized") public TreeMap<String, String> realized = new TreeMap<>();

    void add(String currency, BigDecimal amount) {
      BigDecimal held = new BigDecimal(realized.getOrDefault(currency, "0"));
      realized.put(currency, held.add(amount, PositionsApp.PY).toString());
    }
  }

  /** Decode and check a raw trade; keep its last version per trade id; forward by account. */
  static final class ValidateProcessor implements Processor<String, byte[], String, byte[]> {
    private final ObjectMapper mapper;
    private ProcessorContext<String, byte[]> context;
    private KeyValueStore<String, Integer> versions;

    ValidateProcessor(ObjectMapper mapper) {
      this.mapper = mapper;
    }

    @Override
    public void init(ProcessorContext<String, byte[]> context) {
      this.context = context;
      this.versions = context.getStateStore("trades");
    }

    @Override
    public void process(Record<String, byte[]> record) {
      if (record.value() == null) {
        return;
      }
      RawTrade trade;
      try {
        trade = mapper.readValue(record.value(), RawTrade.class);
      } catch (IOException e) {
        return; // malformed: dropped (the benchmark sends none)
      }
      if (!trade.valid()) {
        return;
      }
      Integer last = versions.get(trade.tradeId);
      if (last != null && last >= trade.version) {
        return; // a duplicate or a stale version
      }
      versions.put(trade.tradeId, trade.version);
      context.forward(record.withKey(trade.account));
    }
  }

  /** Fold each position into its account's aggregate and forward the aggregate. */
  static final class AggregateProcessor
      implements Processor<String, Position, String, AccountAggregate> {
    private ProcessorContext<String, AccountAggregate> context;
    private KeyValueStore<String, Position> held;
    private KeyValueStore<String, AccountAggregate> accounts;

    @Override
    public void init(ProcessorContext<String, AccountAggregate> context) {
      this.context = context;
      this.held = context.getStateStore("held");
      this.accounts = context.getStateStore("accounts");
    }

    @Override
    public void process(Record<String, Position> record) {
      Position position = record.value();
      if (position == null || position.account == null) {
        return;
      }
      AccountAggregate agg = accounts.get(position.account);
      if (agg == null) {
        agg = new AccountAggregate();
        agg.account = position.account;
      }
      Position old = held.get(record.key());
      if (old == null) {
        agg.positions += 1;
      } else {
        agg.tradeCount -= old.tradeCount;
        agg.add(old.currency, old.realizedPnl.negate(PositionsApp.PY));
      }
      agg.tradeCount += position.tradeCount;
      agg.add(position.currency, position.realizedPnl);
      held.put(record.key(), position);
      accounts.put(position.account, agg);
      context.forward(record.withKey(position.account).withValue(agg));
    }
  }

  /** Put {@code account|instrument} in the partition of {@code account}, as tradeflux does. */
  static final class ByAccount implements StreamPartitioner<String, Position> {
    @Override
    public Optional<Set<Integer>> partitions(
        String topic, String key, Position value, int numPartitions) {
      byte[] account = key.substring(0, key.indexOf('|')).getBytes(StandardCharsets.UTF_8);
      return Optional.of(Set.of(Utils.toPositive(Utils.murmur2(account)) % numPartitions));
    }
  }

  static Topology topology(String raw, String enriched, String positions, String pnl) {
    ObjectMapper mapper = new ObjectMapper()
        .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);
    Serde<Trade> trades = PositionsApp.jsonSerde(mapper, Trade.class);
    Serde<Position> positionSerde = PositionsApp.jsonSerde(mapper, Position.class);
    Serde<AccountAggregate> aggregates = PositionsApp.jsonSerde(mapper, AccountAggregate.class);
    Topology t = new Topology();
    // Hop 1: validation (keyed by trade id) -> ENRICHED keyed by account.
    t.addSource("raw", Serdes.String().deserializer(), Serdes.ByteArray().deserializer(), raw);
    t.addProcessor("validate", () -> new ValidateProcessor(mapper), "raw");
    t.addStateStore(Stores.keyValueStoreBuilder(
        Stores.inMemoryKeyValueStore("trades"), Serdes.String(), Serdes.Integer()), "validate");
    t.addSink("enriched", enriched, Serdes.String().serializer(),
        Serdes.ByteArray().serializer(), "validate");
    // Hop 2: the positions fold -> POSITIONS, in the account's partition.
    t.addSource("trades", Serdes.String().deserializer(), trades.deserializer(), enriched);
    t.addProcessor("fold", PositionsProcessor::new, "trades");
    t.addStateStore(Stores.keyValueStoreBuilder(
        Stores.inMemoryKeyValueStore(PositionsApp.STORE), Serdes.String(), positionSerde),
        "fold");
    t.addSink("positions", positions, Serdes.String().serializer(), positionSerde.serializer(),
        new ByAccount(), "fold");
    // Hop 3: the per-account aggregate -> PNL.
    t.addSource("held-positions", Serdes.String().deserializer(), positionSerde.deserializer(),
        positions);
    t.addProcessor("aggregate", AggregateProcessor::new, "held-positions");
    t.addStateStore(Stores.keyValueStoreBuilder(
        Stores.inMemoryKeyValueStore("held"), Serdes.String(), positionSerde), "aggregate");
    t.addStateStore(Stores.keyValueStoreBuilder(
        Stores.inMemoryKeyValueStore("accounts"), Serdes.String(), aggregates), "aggregate");
    t.addSink("pnl", pnl, Serdes.String().serializer(), aggregates.serializer(), "aggregate");
    return t;
  }

  public static void main(String[] args) throws InterruptedException {
    if (args.length < 7) {
      System.err.println("usage: BOOTSTRAP RAW ENRICHED POSITIONS PNL APPLICATION_ID STATE_DIR"
          + " [COMMIT_MS|default]");
      System.exit(2);
    }
    Properties props = new Properties();
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[5]);
    props.put(StreamsConfig.STATE_DIR_CONFIG, args[6]);
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    if (args.length > 7 && !"default".equals(args[7])) {
      props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Integer.parseInt(args[7]));
    }
    for (int i = 8; i < args.length; i++) { // more settings, e.g. producer.retry.backoff.ms=5
      int eq = args[i].indexOf('=');
      props.put(args[i].substring(0, eq), args[i].substring(eq + 1));
    }
    KafkaStreams streams = new KafkaStreams(topology(args[1], args[2], args[3], args[4]), props);
    CountDownLatch stopped = new CountDownLatch(1);
    streams.setUncaughtExceptionHandler(e -> {
      e.printStackTrace();
      stopped.countDown();
      return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close();
      stopped.countDown();
    }));
    streams.start();
    System.err.println("kafka-streams chain started: commit.interval.ms="
        + new StreamsConfig(props).getLong(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG)
        + " settings=" + props);
    stopped.await();
  }
}
