// PgJDBC with server-side prepared statements (prepareThreshold=1: named statements S_1, S_2, ... numbered per
// connection, so different connections give different texts the same name) through Sluice in transaction pooling.
// Run by tests/clients/test_prepared_jdbc.py with the source launcher:
//
//   java -cp postgresql.jar PreparedThreads.java <scenario> <threads> <transactions>
//
// Connection from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE. Prints one JSON object on the last line of stdout
// (what it saw); exits 0 once it has printed, 2 on an unexpected exception.

import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

public class PreparedThreads {
    static final List<String> wrong = Collections.synchronizedList(new ArrayList<>());
    static final List<String> errors = Collections.synchronizedList(new ArrayList<>());
    static final Map<String, AtomicInteger> codes = new ConcurrentHashMap<>();
    static final Set<Integer> backends = ConcurrentHashMap.newKeySet();
    static final AtomicInteger serverPrepared = new AtomicInteger();
    static final AtomicInteger transactionsDone = new AtomicInteger();

    static Connection connect(int statementCache) throws SQLException {
        String url = "jdbc:postgresql://" + System.getenv("PGHOST") + ":" + System.getenv("PGPORT") + "/"
                + System.getenv("PGDATABASE");
        Properties props = new Properties();
        props.setProperty("user", System.getenv("PGUSER"));
        props.setProperty("password", System.getenv("PGPASSWORD"));
        props.setProperty("prepareThreshold", "1");
        props.setProperty("preparedStatementCacheQueries", Integer.toString(statementCache));
        props.setProperty("connectTimeout", "60");
        props.setProperty("socketTimeout", "180");
        return DriverManager.getConnection(url, props);
    }

    static void check(String what, Object got, Object expected) {
        if (!String.valueOf(got).equals(String.valueOf(expected))) {
            wrong.add(what + ": got " + got + ", expected " + expected);
        }
    }

    static void countServerPrepared(PreparedStatement ps) throws SQLException {
        if (ps.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare()) {
            serverPrepared.incrementAndGet();
        }
    }

    // Each thread: its own connection; `transactions` transactions of an insert, a read-back and a statement whose
    // text is the thread's own (under a name every connection uses), each committed; a batch insert; a query in
    // autocommit. statementCache: PgJDBC's per-connection cache; a small one closes statements (Close messages).
    static void transactions(int t, int transactions, int statementCache) throws Exception {
        try (Connection conn = connect(statementCache)) {
            conn.setAutoCommit(false);
            for (int i = 0; i < transactions; i++) {
                String v = "v" + t + "-" + i;
                try (PreparedStatement ins = conn.prepareStatement("INSERT INTO jdbc_ps VALUES (?, ?, ?)")) {
                    ins.setInt(1, t);
                    ins.setInt(2, i);
                    ins.setString(3, v);
                    check("insert " + t + "." + i, ins.executeUpdate(), 1);
                }
                try (PreparedStatement back = conn.prepareStatement(
                        "SELECT (SELECT v FROM jdbc_ps WHERE t = ? AND i = ?), "
                                + "(SELECT count(*) FROM jdbc_ps WHERE t = ?), pg_backend_pid()")) {
                    back.setInt(1, t);
                    back.setInt(2, i);
                    back.setInt(3, t);
                    try (ResultSet rs = back.executeQuery()) {
                        rs.next();
                        check("read-back " + t + "." + i, rs.getString(1) + "/" + rs.getLong(2), v + "/" + (i + 1));
                        backends.add(rs.getInt(3));
                    }
                    if (i == transactions - 1) countServerPrepared(back);
                }
                try (PreparedStatement own = conn.prepareStatement("SELECT ?::int * " + (t + 2) + " + " + t)) {
                    own.setInt(1, i);
                    try (ResultSet rs = own.executeQuery()) {
                        rs.next();
                        check("own " + t + "." + i, rs.getInt(1), i * (t + 2) + t);
                    }
                }
                conn.commit();
                transactionsDone.incrementAndGet();
            }
            try (PreparedStatement batch = conn.prepareStatement("INSERT INTO jdbc_ps VALUES (?, ?, ?)")) {
                for (int i = 0; i < 50; i++) {
                    batch.setInt(1, t);
                    batch.setInt(2, 1000 + i);
                    batch.setString(3, "b" + t + "-" + i);
                    batch.addBatch();
                }
                int[] counts = batch.executeBatch();
                int sum = 0;
                for (int c : counts) sum += c == Statement.SUCCESS_NO_INFO ? 1 : c;
                check("batch " + t, sum, 50);
            }
            conn.commit();
            conn.setAutoCommit(true);
            for (int i = 0; i < 10; i++) {
                try (PreparedStatement ps = conn.prepareStatement(
                        "SELECT count(*) FILTER (WHERE i >= 1000), count(*) FILTER (WHERE i < ?) FROM jdbc_ps WHERE t = ?")) {
                    ps.setInt(1, transactions);
                    ps.setInt(2, t);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        check("autocommit " + t + "." + i, rs.getLong(1) + "/" + rs.getLong(2), "50/" + transactions);
                    }
                }
            }
        }
    }

    // Each thread: a statement failing (division by zero, unique violation) inside a transaction, rollback, and the
    // same statements again.
    static void errorsThenReuse(int t, int rounds, int statementCache) throws Exception {
        try (Connection conn = connect(statementCache)) {
            conn.setAutoCommit(false);
            for (int i = 0; i < rounds; i++) {
                try (PreparedStatement ins = conn.prepareStatement("INSERT INTO jdbc_ps VALUES (?, ?, 'x')");
                     PreparedStatement div = conn.prepareStatement("SELECT 100 / ?")) {
                    ins.setInt(1, t);
                    ins.setInt(2, i);
                    ins.executeUpdate();
                    div.setInt(1, 4);
                    try (ResultSet rs = div.executeQuery()) {
                        rs.next();
                        check("div " + t + "." + i, rs.getInt(1), 25);
                    }
                    try {
                        if (i % 2 == 0) {
                            div.setInt(1, 0);
                            div.executeQuery().close();
                        } else {
                            ins.setInt(1, t);
                            ins.setInt(2, i);  // the row this transaction just inserted
                            ins.executeUpdate();
                        }
                        wrong.add("no error " + t + "." + i);
                    } catch (SQLException e) {
                        codes.computeIfAbsent(e.getSQLState(), k -> new AtomicInteger()).incrementAndGet();
                    }
                    conn.rollback();
                    div.setInt(1, 5);
                    try (ResultSet rs = div.executeQuery()) {
                        rs.next();
                        check("div after rollback " + t + "." + i, rs.getInt(1), 20);
                    }
                    conn.commit();
                }
            }
            try (PreparedStatement ps = conn.prepareStatement("SELECT count(*) FROM jdbc_ps WHERE t = ?")) {
                ps.setInt(1, t);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    check("rolled back " + t, rs.getLong(1), 0);
                }
            }
            conn.commit();
        }
    }

    interface Body {
        void run(int t) throws Exception;
    }

    static void runThreads(int threads, Body body) throws InterruptedException {
        List<Thread> all = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            final int index = t;
            Thread thread = new Thread(() -> {
                try {
                    body.run(index);
                } catch (Exception e) {
                    String state = e instanceof SQLException ? ((SQLException) e).getSQLState() + " " : "";
                    Throwable next = e instanceof BatchUpdateException ? ((SQLException) e).getNextException() : null;
                    errors.add("thread " + index + ": " + state + e + (next != null ? " / " + next : ""));
                }
            });
            thread.start();
            all.add(thread);
        }
        for (Thread thread : all) thread.join();
    }

    static void execute(String sql) throws SQLException {
        try (Connection conn = connect(0); Statement st = conn.createStatement()) {
            st.execute(sql);
        }
    }

    static String json(Object o) {
        if (o instanceof String) {
            return "\"" + ((String) o).replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n") + "\"";
        }
        if (o instanceof List) {
            List<String> parts = new ArrayList<>();
            for (Object x : (List<?>) o) parts.add(json(x));
            return "[" + String.join(",", parts) + "]";
        }
        if (o instanceof Map) {
            List<String> parts = new ArrayList<>();
            for (Map.Entry<?, ?> e : new TreeMap<>((Map<?, ?>) o).entrySet()) {
                parts.add(json(String.valueOf(e.getKey())) + ":" + json(e.getValue()));
            }
            return "{" + String.join(",", parts) + "}";
        }
        return String.valueOf(o);
    }

    public static void main(String[] args) throws Exception {
        String scenario = args[0];
        int threads = Integer.parseInt(args[1]);
        int transactions = Integer.parseInt(args[2]);
        int statementCache = args.length > 3 ? Integer.parseInt(args[3]) : 256;
        execute("DROP TABLE IF EXISTS jdbc_ps");
        execute("CREATE TABLE jdbc_ps (t int, i int, v text, PRIMARY KEY (t, i))");
        Map<String, Object> out = new TreeMap<>();
        long started = System.nanoTime();
        switch (scenario) {
            case "transactions":
                runThreads(threads, t -> transactions(t, transactions, statementCache));
                try (Connection conn = connect(0); Statement st = conn.createStatement();
                     ResultSet rs = st.executeQuery("SELECT count(*), count(*) FILTER (WHERE v = 'v' || t || '-' || i "
                             + "OR v = 'b' || t || '-' || (i - 1000)) FROM jdbc_ps")) {
                    rs.next();
                    out.put("rows", rs.getLong(1));
                    out.put("right", rs.getLong(2));
                }
                break;
            case "errors":
                runThreads(threads, t -> errorsThenReuse(t, transactions, statementCache));
                Map<String, Object> seen = new TreeMap<>();
                codes.forEach((k, v) -> seen.put(k, v.get()));
                out.put("codes", seen);
                break;
            default:
                System.err.println("usage: PreparedThreads transactions|errors <threads> <transactions> [cache]");
                System.exit(2);
        }
        execute("DROP TABLE jdbc_ps");
        out.put("transactions", transactionsDone.get());
        out.put("serverPrepared", serverPrepared.get());
        out.put("backends", backends.size());
        out.put("wrongCount", wrong.size());
        out.put("wrong", new ArrayList<>(wrong.subList(0, Math.min(5, wrong.size()))));
        out.put("errorCount", errors.size());
        out.put("errors", new ArrayList<>(errors.subList(0, Math.min(5, errors.size()))));
        out.put("elapsedMs", (System.nanoTime() - started) / 1_000_000);
        System.out.println(json(out));
    }
}
