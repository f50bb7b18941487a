package io.tradeflux.fixinitiator;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import quickfix.Application;
import quickfix.DefaultMessageFactory;
import quickfix.FieldNotFound;
import quickfix.FileLogFactory;
import quickfix.FileStoreFactory;
import quickfix.Message;
import quickfix.Session;
import quickfix.SessionID;
import quickfix.SessionSettings;
import quickfix.SocketInitiator;
import quickfix.field.AvgPx;
import quickfix.field.BeginSeqNo;
import quickfix.field.BusinessRejectReason;
import quickfix.field.CumQty;
import quickfix.field.EndSeqNo;
import quickfix.field.ExecID;
import quickfix.field.ExecType;
import quickfix.field.LeavesQty;
import quickfix.field.MsgSeqNum;
import quickfix.field.MsgType;
import quickfix.field.OrdStatus;
import quickfix.field.OrderID;
import quickfix.field.PartyID;
import quickfix.field.PartyIDSource;
import quickfix.field.PartyRole;
import quickfix.field.PossDupFlag;
import quickfix.field.PreviouslyReported;
import quickfix.field.RefSeqNum;
import quickfix.field.Side;
import quickfix.field.Text;
import quickfix.field.TradeDate;
import quickfix.field.TradeReportID;
import quickfix.field.TradeReportRefID;
import quickfix.field.TradeReportTransType;
import quickfix.fix44.ExecutionReport;
import quickfix.fix44.TradeCaptureReport;

/**
 * Sends the ExecutionReports, TradeCaptureReports and AllocationInstructions of a plan (CSV,
 * one message a row, column msg_type 8, AE or J) over a FIX 4.4 session, at a steady rate.
 * Columns a plan may leave out (older plans) read as empty.
 *
 * <p>The session survives the acceptor going away: messages sent while it is down are
 * stored (QuickFIX/J persists every outgoing application message) and delivered by the
 * resend the acceptor asks for after the next Logon. Prints one line per event to stdout
 * (LOGON, LOGOUT, SENT n, ALL_SENT n, RESEND_REQUEST from to, POSSDUP_SENT seq,
 * SESSION_REJECT / BUSINESS_REJECT of a message the acceptor refused, ALLOC_ACK alloc_id
 * status rej_code text of each AllocationInstructionAck, CONFIRMATION confirm_id trans_type
 * status account qty avg_px ref of each Confirmation) and, once all is sent, reads commands
 * from stdin: {@code AU confirm_id affirm_status trade_date} sends a ConfirmationAck (1
 * received, 2 rejected, 3 affirmed; printed AU_SENT confirm_id), {@code stop} (or the end
 * of stdin) logs out.
 *
 * <p>Usage: {@code java -jar fix-initiator.jar HOST PORT SENDER TARGET PLAN.csv RATE WORKDIR}
 *
 * <p>TLS when {@code FIX_TLS_TRUSTSTORE} (PKCS12, password {@code FIX_TLS_PASSWORD}) names the
 * CA to trust; {@code FIX_TLS_KEYSTORE} adds a client certificate.
 */
public final class DropCopySender implements Application {

    private final CountDownLatch loggedOn = new CountDownLatch(1);
    private final AtomicInteger possDupSent = new AtomicInteger();
    private volatile boolean sessionUp;

    public static void main(String[] args) throws Exception {
        if (args.length != 7) {
            System.err.println("usage: HOST PORT SENDER TARGET PLAN.csv RATE_PER_S WORKDIR");
            System.exit(2);
        }
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        String sender = args[2];
        String target = args[3];
        Path plan = Path.of(args[4]);
        double rate = Double.parseDouble(args[5]);
        Path work = Path.of(args[6]);
        new DropCopySender().run(host, port, sender, target, plan, rate, work);
    }

    private void run(String host, int port, String sender, String target, Path plan, double rate,
                     Path work) throws Exception {
        Files.createDirectories(work);
        String config = String.join("\n",
            "[DEFAULT]",
            "ConnectionType=initiator",
            "FileStorePath=" + work.resolve("store"),
            "FileLogPath=" + work.resolve("log"),
            "NonStopSession=Y",
            "HeartBtInt=5",
            "ReconnectInterval=1",
            "UseDataDictionary=Y",
            "DataDictionary=FIX44.xml",
            "PersistMessages=Y",
            "ResetOnLogon=N",
            "ResetOnLogout=N",
            "ResetOnDisconnect=N",
            "[SESSION]",
            "BeginString=FIX.4.4",
            "SenderCompID=" + sender,
            "TargetCompID=" + target,
            "SocketConnectHost=" + host,
            "SocketConnectPort=" + port,
            tlsSettings(),
            "");
        SessionSettings settings = new SessionSettings(
            new java.io.ByteArrayInputStream(config.getBytes(StandardCharsets.UTF_8)));
        SessionID sessionId = new SessionID("FIX.4.4", sender, target);
        SocketInitiator initiator = new SocketInitiator(this, new FileStoreFactory(settings),
            settings, new FileLogFactory(settings), new DefaultMessageFactory());
        initiator.start();
        if (!loggedOn.await(60, TimeUnit.SECONDS)) {
            say("NO_LOGON");
            initiator.stop(true);
            System.exit(3);
        }
        List<Map<String, String>> rows = readPlan(plan);
        long start = System.nanoTime();
        int sent = 0;
        for (Map<String, String> row : rows) {
            long due = start + (long) (sent * 1e9 / rate);
            long wait = due - System.nanoTime();
            if (wait > 0) {
                TimeUnit.NANOSECONDS.sleep(wait);
            }
            // Returns false while the acceptor is down; the message is stored all the same
            // and goes out in the resend after the next Logon.
            Message message = switch (row.get("msg_type")) {
                case "AE" -> tradeCaptureReport(row);
                case "J" -> allocationInstruction(row);
                default -> executionReport(row);
            };
            Session.sendToTarget(message, sessionId);
            sent++;
            if (sent % 100 == 0) {
                say("SENT " + sent + " session_up=" + sessionUp);
            }
        }
        say("ALL_SENT " + sent);
        BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = stdin.readLine()) != null && !line.trim().equals("stop")) {
            String[] words = line.trim().split(" ");
            if (words.length == 4 && words[0].equals("AU")) {
                Session.sendToTarget(confirmationAck(words[1], words[2], words[3]), sessionId);
                say("AU_SENT " + words[1]);
            }
        }
        say("STOPPING possdup_sent=" + possDupSent.get());
        initiator.stop();
        System.exit(0);
    }

    private static String tlsSettings() {
        String trust = System.getenv("FIX_TLS_TRUSTSTORE");
        if (trust == null || trust.isEmpty()) {
            return "";
        }
        String password = System.getenv().getOrDefault("FIX_TLS_PASSWORD", "changeit");
        List<String> lines = new ArrayList<>(List.of(
            "SocketUseSSL=Y",
            "SocketTrustStore=" + trust,
            "SocketTrustStorePassword=" + password,
            "SocketTrustStoreType=PKCS12"));
        String key = System.getenv("FIX_TLS_KEYSTORE");
        if (key != null && !key.isEmpty()) {
            lines.add("SocketKeyStore=" + key);
            lines.add("SocketKeyStorePassword=" + password);
            lines.add("SocketKeyStoreType=PKCS12");
        }
        return String.join("\n", lines);
    }

    private static List<Map<String, String>> readPlan(Path plan) throws Exception {
        List<String> lines = Files.readAllLines(plan, StandardCharsets.UTF_8);
        String[] header = lines.get(0).split(",", -1);
        List<Map<String, String>> rows = new ArrayList<>();
        for (String line : lines.subList(1, lines.size())) {
            if (line.isBlank()) {
                continue;
            }
            String[] cells = line.split(",", -1);
            Map<String, String> row = new HashMap<>();
            for (int i = 0; i < header.length; i++) {
                row.put(header[i], cells[i]);
            }
            for (String optional : new String[] {"cl_ord_id", "alloc_trans_type", "ref_alloc_id",
                    "allocs", "exec_ids", "trade_date", "text"}) {
                row.putIfAbsent(optional, "");
            }
            rows.add(row);
        }
        return rows;
    }

    /** An ExecutionReport of a fill (F), a correction (G) or a cancel (H) of one. */
    private static ExecutionReport executionReport(Map<String, String> row) {
        char execType = row.get("exec_type").charAt(0);
        ExecutionReport er = new ExecutionReport(
            new OrderID(row.get("order_id")),
            new ExecID(row.get("exec_id")),
            new ExecType(execType),
            new OrdStatus(OrdStatus.FILLED),
            new Side(row.get("side").charAt(0)),
            new LeavesQty(0),
            new CumQty(0),
            new AvgPx(0));
        // Decimals as the plan spells them: no double rounding on the way.
        er.setString(CumQty.FIELD, row.get("qty"));
        er.setString(AvgPx.FIELD, row.get("px"));
        er.setString(quickfix.field.LastQty.FIELD, row.get("qty"));
        er.setString(quickfix.field.LastPx.FIELD, row.get("px"));
        if (!row.get("account").isEmpty()) {
            er.setString(quickfix.field.Account.FIELD, row.get("account"));
        }
        er.setString(quickfix.field.Symbol.FIELD, row.get("symbol"));
        if (!row.get("security_id").isEmpty()) {
            er.setString(quickfix.field.SecurityID.FIELD, row.get("security_id"));
            er.setString(quickfix.field.SecurityIDSource.FIELD, "4"); // ISIN
        }
        er.setString(quickfix.field.Currency.FIELD, row.get("currency"));
        er.setString(quickfix.field.LastMkt.FIELD, row.get("last_mkt"));
        er.setString(quickfix.field.TransactTime.FIELD, row.get("transact_time"));
        if (!row.get("exec_ref_id").isEmpty()) {
            er.setString(quickfix.field.ExecRefID.FIELD, row.get("exec_ref_id"));
        }
        if (!row.get("cl_ord_id").isEmpty()) {
            er.setString(quickfix.field.ClOrdID.FIELD, row.get("cl_ord_id"));
        }
        ExecutionReport.NoPartyIDs contra = new ExecutionReport.NoPartyIDs();
        contra.set(new PartyID(row.get("contra")));
        contra.set(new PartyIDSource(PartyIDSource.PROPRIETARY_CUSTOM_CODE));
        contra.set(new PartyRole(PartyRole.CONTRA_FIRM));
        er.addGroup(contra);
        return er;
    }

    /** A TradeCaptureReport: new (exec_type F), replace (G) or cancel (H) of a report. */
    private static TradeCaptureReport tradeCaptureReport(Map<String, String> row) {
        TradeCaptureReport tcr = new TradeCaptureReport();
        tcr.setString(TradeReportID.FIELD, row.get("exec_id"));
        String transType = switch (row.get("exec_type")) {
            case "F" -> "0";
            case "G" -> "2";
            case "H" -> "1";
            default -> throw new IllegalArgumentException("exec_type " + row.get("exec_type"));
        };
        tcr.setString(TradeReportTransType.FIELD, transType);
        if (!row.get("exec_ref_id").isEmpty()) {
            tcr.setString(TradeReportRefID.FIELD, row.get("exec_ref_id"));
        }
        tcr.setString(PreviouslyReported.FIELD, "N");
        tcr.setString(quickfix.field.Symbol.FIELD, row.get("symbol"));
        if (!row.get("security_id").isEmpty()) {
            tcr.setString(quickfix.field.SecurityID.FIELD, row.get("security_id"));
            tcr.setString(quickfix.field.SecurityIDSource.FIELD, "4");
        }
        tcr.setString(quickfix.field.LastQty.FIELD, row.get("qty"));
        tcr.setString(quickfix.field.LastPx.FIELD, row.get("px"));
        tcr.setString(quickfix.field.LastMkt.FIELD, row.get("last_mkt"));
        tcr.setString(TradeDate.FIELD, row.get("transact_time").substring(0, 8));
        tcr.setString(quickfix.field.TransactTime.FIELD, row.get("transact_time"));
        TradeCaptureReport.NoSides side = new TradeCaptureReport.NoSides();
        side.set(new Side(row.get("side").charAt(0)));
        side.set(new OrderID(row.get("order_id")));
        TradeCaptureReport.NoSides.NoPartyIDs contra = new TradeCaptureReport.NoSides.NoPartyIDs();
        contra.set(new PartyID(row.get("contra")));
        contra.set(new PartyIDSource(PartyIDSource.PROPRIETARY_CUSTOM_CODE));
        contra.set(new PartyRole(PartyRole.CONTRA_FIRM));
        side.addGroup(contra);
        if (!row.get("account").isEmpty()) {
            side.setString(quickfix.field.Account.FIELD, row.get("account"));
        }
        side.setString(quickfix.field.Currency.FIELD, row.get("currency"));
        tcr.addGroup(side);
        return tcr;
    }

    /**
     * An AllocationInstruction of the block of order cl_ord_id: alloc_trans_type 0 new, 1
     * replace, 2 cancel (of ref_alloc_id); allocs "ACCOUNT:QTY;..."; exec_ids "E1;E2" or empty;
     * quantity qty, average price px, trade_date YYYYMMDD.
     */
    private static quickfix.fix44.AllocationInstruction allocationInstruction(Map<String, String> row) {
        quickfix.fix44.AllocationInstruction j = new quickfix.fix44.AllocationInstruction();
        j.setString(quickfix.field.AllocID.FIELD, row.get("exec_id"));
        j.setString(quickfix.field.AllocTransType.FIELD,
            row.get("alloc_trans_type").isEmpty() ? "0" : row.get("alloc_trans_type"));
        if (!row.get("ref_alloc_id").isEmpty()) {
            j.setString(quickfix.field.RefAllocID.FIELD, row.get("ref_alloc_id"));
        }
        j.setString(quickfix.field.AllocType.FIELD, "1"); // calculated
        j.setString(quickfix.field.AllocNoOrdersType.FIELD, "1"); // explicit list
        quickfix.fix44.AllocationInstruction.NoOrders order =
            new quickfix.fix44.AllocationInstruction.NoOrders();
        order.setString(quickfix.field.ClOrdID.FIELD, row.get("cl_ord_id"));
        j.addGroup(order);
        for (String execId : row.get("exec_ids").split(";")) {
            if (!execId.isEmpty()) {
                quickfix.fix44.AllocationInstruction.NoExecs exec =
                    new quickfix.fix44.AllocationInstruction.NoExecs();
                exec.setString(quickfix.field.ExecID.FIELD, execId);
                j.addGroup(exec);
            }
        }
        j.setString(Side.FIELD, row.get("side"));
        j.setString(quickfix.field.Symbol.FIELD, row.get("symbol"));
        if (!row.get("security_id").isEmpty()) {
            j.setString(quickfix.field.SecurityID.FIELD, row.get("security_id"));
            j.setString(quickfix.field.SecurityIDSource.FIELD, "8"); // exchange symbol
        }
        j.setString(quickfix.field.Quantity.FIELD, row.get("qty"));
        j.setString(AvgPx.FIELD, row.get("px"));
        j.setString(TradeDate.FIELD, row.get("trade_date"));
        j.setString(quickfix.field.TransactTime.FIELD, row.get("transact_time"));
        if (!row.get("text").isEmpty()) {
            j.setString(Text.FIELD, row.get("text"));
        }
        for (String alloc : row.get("allocs").split(";")) {
            if (!alloc.isEmpty()) {
                String[] parts = alloc.split(":");
                quickfix.fix44.AllocationInstruction.NoAllocs entry =
                    new quickfix.fix44.AllocationInstruction.NoAllocs();
                entry.setString(quickfix.field.AllocAccount.FIELD, parts[0]);
                entry.setString(quickfix.field.AllocQty.FIELD, parts[1]);
                j.addGroup(entry);
            }
        }
        return j;
    }

    /** A ConfirmationAck of a confirmation: affirm status 1 received, 2 rejected, 3 affirmed. */
    private static quickfix.fix44.ConfirmationAck confirmationAck(String confirmId, String status,
                                                                  String tradeDate) {
        quickfix.fix44.ConfirmationAck au = new quickfix.fix44.ConfirmationAck();
        au.setString(quickfix.field.ConfirmID.FIELD, confirmId);
        au.setString(TradeDate.FIELD, tradeDate);
        au.set(new quickfix.field.TransactTime());
        au.setString(quickfix.field.AffirmStatus.FIELD, status);
        if (status.equals("2")) {
            au.setString(Text.FIELD, "does not match our booking");
        }
        return au;
    }

    private static String optional(Message message, int tag) throws FieldNotFound {
        return message.isSetField(tag) ? message.getString(tag) : "-";
    }

    private static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    @Override
    public void onCreate(SessionID sessionId) {
    }

    @Override
    public void onLogon(SessionID sessionId) {
        sessionUp = true;
        say("LOGON " + sessionId);
        loggedOn.countDown();
    }

    @Override
    public void onLogout(SessionID sessionId) {
        sessionUp = false;
        say("LOGOUT " + sessionId);
    }

    @Override
    public void toAdmin(Message message, SessionID sessionId) {
    }

    @Override
    public void fromAdmin(Message message, SessionID sessionId) throws FieldNotFound {
        String type = message.getHeader().getString(MsgType.FIELD);
        if (type.equals(MsgType.RESEND_REQUEST)) {
            say("RESEND_REQUEST " + message.getInt(BeginSeqNo.FIELD) + " "
                + message.getInt(EndSeqNo.FIELD));
        } else if (type.equals(MsgType.REJECT)) {
            say("SESSION_REJECT ref_seq=" + message.getInt(RefSeqNum.FIELD) + " ref_tag="
                + (message.isSetField(quickfix.field.RefTagID.FIELD)
                    ? message.getInt(quickfix.field.RefTagID.FIELD) : -1));
        }
    }

    @Override
    public void toApp(Message message, SessionID sessionId) {
        try {
            if (message.getHeader().isSetField(PossDupFlag.FIELD)
                    && message.getHeader().getBoolean(PossDupFlag.FIELD)) {
                possDupSent.incrementAndGet();
                say("POSSDUP_SENT " + message.getHeader().getInt(MsgSeqNum.FIELD));
            }
        } catch (FieldNotFound e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public void fromApp(Message message, SessionID sessionId) throws FieldNotFound {
        String type = message.getHeader().getString(MsgType.FIELD);
        if (type.equals(MsgType.ALLOCATION_INSTRUCTION_ACK)) {
            say("ALLOC_ACK " + message.getString(quickfix.field.AllocID.FIELD) + " "
                + message.getString(quickfix.field.AllocStatus.FIELD) + " "
                + optional(message, quickfix.field.AllocRejCode.FIELD) + " "
                + optional(message, Text.FIELD).replace(' ', '_'));
        } else if (type.equals(MsgType.CONFIRMATION)) {
            say("CONFIRMATION " + message.getString(quickfix.field.ConfirmID.FIELD) + " "
                + message.getString(quickfix.field.ConfirmTransType.FIELD) + " "
                + message.getString(quickfix.field.ConfirmStatus.FIELD) + " "
                + message.getString(quickfix.field.AllocAccount.FIELD) + " "
                + message.getString(quickfix.field.AllocQty.FIELD) + " "
                + message.getString(AvgPx.FIELD) + " "
                + optional(message, quickfix.field.ConfirmRefID.FIELD) + " "
                + message.getString(TradeDate.FIELD));
        }
        if (type.equals(MsgType.BUSINESS_MESSAGE_REJECT)) {
            say("BUSINESS_REJECT ref_seq=" + message.getInt(RefSeqNum.FIELD)
                + " reason=" + message.getInt(BusinessRejectReason.FIELD)
                + " text=" + (message.isSetField(Text.FIELD) ? message.getString(Text.FIELD) : ""));
        }
    }
}
