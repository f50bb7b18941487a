package io.tradeflux.bench;

import com.fasterxml.jackson.annotation.JsonFormat;
import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The tradeflux positions job on Kafka Streams (bench/compare.py's peer).
 *
 * <p>EnrichedTrade JSON keyed by account in; Position JSON keyed {@code account|instrument}
 * out, one per trade. A Processor API node with an in-memory key-value store (change-logged,
 * the default) keyed {@code account|instrument}, so no repartition topic is needed: the
 * account key already puts every position of an account in one partition. Exactly-once v2.
 *
 * <p>The arithmetic is docs/domain-rules.md "Positions" for NEW trades in arrival order, in
 * Python's default decimal context (28 digits, half-even) on every operation, so the results
 * equal tradeflux's Decimal ones to the last digit.
 *
 * <p>Usage: java -jar positions-kafka-streams.jar BOOTSTRAP INPUT OUTPUT APPLICATION_ID
 * STATE_DIR [COMMIT_INTERVAL_MS|default] [STREAM_THREADS]
 */
public final class PositionsApp {

  /** Python's decimal.DefaultContext: 28 significant digits, ROUND_HALF_EVEN. */
  static final MathContext PY = new MathContext(28, RoundingMode.HALF_EVEN);

  static final String STORE = "positions";

  private PositionsApp() {}

  /** The fields of tradeflux's EnrichedTrade this job reads; the rest are ignored. */
  @JsonIgnoreProperties(ignoreUnknown = true)
  public static final class Trade {
    @JsonProperty("event_type") public String eventType;
    @JsonProperty("trade_id") public String tradeId;
    @JsonProperty("account") public String account;
    @JsonProperty("instrument") public String instrument;
    @JsonProperty("side") public String side;
    @JsonProperty("quantity") public BigDecimal quantity;
    @JsonProperty("price") public BigDecimal price;
    @JsonProperty("currency") public String currency;
    // A raw TradeEvent has no multiplier (refdata adds it): 1, as every sample instrument's.
    @JsonProperty("multiplier") public BigDecimal multiplier = BigDecimal.ONE;
    @JsonProperty("trade_time") public String tradeTime;
  }

  /** tradeflux's Position, field for field; decimals as strings, as msgspec writes them. */
  @JsonIgnoreProperties(ignoreUnknown = true)
  @JsonPropertyOrder({"account", "instrument", "currency", "quantity", "avg_cost",
      "realized_pnl", "multiplier", "trade_count", "last_trade_id", "as_of"})
  public static final class Position {
    @JsonProperty("account") public String account;
    @JsonProperty("instrument") public String instrument;
    @JsonProperty("currency") public String currency;
    @JsonFormat(shape = JsonFormat.Shape.STRING)
    @JsonProperty("quantity") public BigDecimal quantity = BigDecimal.ZERO;
    @JsonFormat(shape = JsonFormat.Shape.STRING)
    @JsonProperty("avg_cost") public BigDecimal avgCost = BigDecimal.ZERO;
    @JsonFormat(shape = JsonFormat.Shape.STRING)
    @JsonProperty("realized_pnl") public BigDecimal realizedPnl = BigDecimal.ZERO;
    @JsonFormat(shape = JsonFormat.Shape.STRING)
    @JsonProperty("multiplier") public BigDecimal multiplier = BigDecimal.ONE;
    @JsonProperty("trade_count") public int tradeCount;
    @JsonProperty("last_trade_id") public String lastTradeId = "";
    @JsonProperty("as_of") public String asOf;

    /** Fold one NEW trade into this position (average cost), in place. */
    void apply(Trade t) {
      BigDecimal q = "BUY".equals(t.side) ? t.quantity.plus(PY) : t.quantity.negate(PY);
      BigDecimal p = t.price;
      BigDecimal m = t.multiplier;
      BigDecimal qty = quantity;
      if (qty.signum() == 0 || q.signum() == qty.signum()) {
        BigDecimal absQ = qty.abs(PY);
        BigDecimal absq = q.abs(PY);
        BigDecimal cost = absQ.multiply(avgCost, PY).add(absq.multiply(p, PY), PY);
        avgCost = cost.divide(absQ.add(absq, PY), PY);
        quantity = qty.add(q, PY);
      } else {
        BigDecimal c = q.abs(PY).min(qty.abs(PY));
        BigDecimal diff = qty.signum() > 0 ? p.subtract(avgCost, PY) : avgCost.subtract(p, PY);
        realizedPnl = realizedPnl.add(diff.multiply(c, PY).multiply(m, PY), PY);
        BigDecimal next = qty.add(q, PY);
        if (next.signum() == 0) {
          avgCost = BigDecimal.ZERO;
        } else if (next.signum() != qty.signum()) {
          avgCost = p;
        }
        quantity = next;
      }
      account = t.account;
      instrument = t.instrument;
      currency = t.currency;
      multiplier = m;
      tradeCount += 1;
      lastTradeId = t.tradeId;
      asOf = t.tradeTime;
    }
  }

  /** A Jackson serde for one class (values of the input, the store and the output). */
  static <T> Serde<T> jsonSerde(ObjectMapper mapper, Class<T> type) {
    Serializer<T> ser = (topic, value) -> {
      try {
        return value == null ? null : mapper.writeValueAsBytes(value);
      } catch (IOException e) {
        throw new SerializationException(e);
      }
    };
    Deserializer<T> de = (topic, data) -> {
      try {
        return data == null ? null : mapper.readValue(data, type);
      } catch (IOException e) {
        throw new SerializationException(e);
      }
    };
    return Serdes.serdeFrom(ser, de);
  }

  /** Per trade: read the position of account|instrument, fold, store, forward. */
  static final class PositionsProcessor implements Processor<String, Trade, String, Position> {
    private ProcessorContext<String, Position> context;
    private KeyValueStore<String, Position> store;

    @Override
    public void init(ProcessorContext<String, Position> context) {
      this.context = context;
      this.store = context.getStateStore(STORE);
    }

    @Override
    public void process(Record<String, Trade> record) {
      Trade trade = record.value();
      if (trade == null || !"NEW".equals(trade.eventType)) {
        return; // the benchmark input is NEW trades only
      }
      String key = trade.account + "|" + trade.instrument;
      Position position = store.get(key);
      if (position == null) {
        position = new Position();
      }
      position.apply(trade);
      store.put(key, position);
      context.forward(record.withKey(key).withValue(position));
    }
  }

  static Topology topology(String input, String output) {
    ObjectMapper mapper = new ObjectMapper()
        .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);
    Serde<Trade> trades = jsonSerde(mapper, Trade.class);
    Serde<Position> positions = jsonSerde(mapper, Position.class);
    Topology topology = new Topology();
    topology.addSource("trades", Serdes.String().deserializer(), trades.deserializer(), input);
    topology.addProcessor("fold", PositionsProcessor::new, "trades");
    // In memory, change-logged (logging is on unless withLoggingDisabled()).
    topology.addStateStore(
        Stores.keyValueStoreBuilder(
            Stores.inMemoryKeyValueStore(STORE), Serdes.String(), positions),
        "fold");
    topology.addSink("positions", output, Serdes.String().serializer(),
        positions.serializer(), "fold");
    return topology;
  }

  public static void main(String[] args) throws InterruptedException {
    if (args.length < 5) {
      System.err.println(
          "usage: BOOTSTRAP INPUT OUTPUT APPLICATION_ID STATE_DIR [COMMIT_MS] [THREADS]");
      System.exit(2);
    }
    Properties props = new Properties();
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[3]);
    props.put(StreamsConfig.STATE_DIR_CONFIG, args[4]);
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    if (args.length > 5 && !"default".equals(args[5])) {
      props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Integer.parseInt(args[5]));
    }
    if (args.length > 6) {
      props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Integer.parseInt(args[6]));
    }
    KafkaStreams streams = new KafkaStreams(topology(args[1], args[2]), props);
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
    System.err.println("kafka-streams positions started: commit.interval.ms="
        + new StreamsConfig(props).getLong(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG)
        + " num.stream.threads="
        + new StreamsConfig(props).getInt(StreamsConfig.NUM_STREAM_THREADS_CONFIG));
    stopped.await();
  }
}
