// Package sql carries messages through PostgreSQL or MySQL/MariaDB tables
// with watermill-sql. [PostgresKind] and [MySQLKind] register it as
// transport kinds "postgres" and "mysql". Importers name it sqltransport,
// as the examples do, so that it does not hide database/sql:
//
//	import sqltransport "github.com/millrace/millrace/transports/sql"
//
// # Tables
//
// Every topic is a table <table_prefix><topic>; <table_prefix>offsets_<topic>
// keeps each consumer group's position. Both are created on first publish
// or subscribe. Names longer than 63 characters are shortened with a hash
// of the topic. Delayed messages wait in <table_prefix>delayed. Rows are
// never deleted by the transport.
//
// # Wire format
//
// Services in other languages read and write a topic's table directly.
// PostgreSQL:
//
//	"offset"         BIGSERIAL                         the order within a transaction
//	uuid             VARCHAR(255) NULL                 the message id
//	created_at       TIMESTAMP NOT NULL DEFAULT now
//	payload          BYTEA NULL                        the payload bytes, as is
//	metadata         JSON NULL                         the metadata
//	transaction_id   xid8 NOT NULL DEFAULT pg_current_xact_id()
//	PRIMARY KEY (transaction_id, "offset")
//
// MySQL/MariaDB:
//
//	`offset`         BIGINT AUTO_INCREMENT PRIMARY KEY the order
//	uuid             VARCHAR(255) NULL
//	created_at       TIMESTAMP NOT NULL DEFAULT now
//	payload          LONGBLOB NULL
//	metadata         JSON NULL
//
// To publish, insert payload and metadata and, if you have one, uuid:
//
//	INSERT INTO millrace_orders (uuid, payload, metadata)
//	VALUES ('4f0c…', '{"order_id":42}', '{"message_type":"OrderPlaced"}');
//
// (on PostgreSQL leave transaction_id to its default). The message is
// delivered when the inserting transaction commits. Consumers read rows in
// order of (transaction_id, offset) on PostgreSQL and offset on MySQL.
//
// Metadata is a JSON object whose keys are metadata keys (see the millrace
// package for the envelope's names) and whose values are strings. When
// reading rows, this transport is lenient, because a row it cannot decode
// would stop its consumer group for good:
//
//   - A NULL or empty uuid gets the id "postgres:<topic>/<offset>" or
//     "mysql:<topic>/<offset>" (transports.EnsureUUID): the same on every
//     redelivery, so deduplication recognises it.
//   - A NULL payload is an empty payload; NULL metadata is no metadata.
//   - Metadata values that are not strings become their JSON text (1,
//     true, {"a":1}); null values are dropped.
//   - Metadata that is not a JSON object (an array, a number) is dropped,
//     and the message carries MetadataInvalid saying why.
//
// # Guarantees
//
//   - Groups. Every consumer group receives every message of a topic;
//     within a group, Subscribe calls share the messages. A group reads
//     from its committed offset; a new group starts where initial_offset
//     says (below).
//   - At least once, in order. A subscription reads up to batch_size
//     messages in one transaction, hands them out one at a time in publish
//     order and commits the group's offset after the acked ones. A nacked
//     message is handed out again after resend_interval, holding back the
//     group's later messages meanwhile; an unsettled one is redelivered
//     after ack_deadline or when its subscription ends. Subscriptions
//     survive database restarts: errors are logged and the query retried.
//   - Ephemeral subscriptions. Transport.SubscribeEphemeral reads a topic
//     for one process alone, in no group, from the topic's newest position
//     (as initial_offset newest, below, but on PostgreSQL without what
//     committed before it opened), keeping its position in memory:
//     it writes no offsets row and holds no transaction while a message
//     is out, so it leaves nothing behind. Request/reply reads an
//     instance's replies this way.
//   - Publishing. Publish inserts all its messages with one INSERT and
//     returns once they are committed. Calls to one topic that arrive while
//     an INSERT to it runs are merged into the next one (group commit):
//     each call's messages stay together and in order, and under load a
//     commit carries many calls. Transport.TxPublisher publishes in
//     the caller's transaction instead: the messages exist if and only if
//     it commits (the transactional outbox builds on it).
//   - Time limits. Every connection is opened within connect_timeout, and
//     Open's first calls (ping, delayed messages table) are bounded by it
//     too; every later statement, a subscription's included, is bounded by
//     query_timeout. On a server that accepts connections and stops
//     answering, calls fail with an error that names the key, the address
//     and what did not answer, and subscriptions log it and query again.
//   - Browsing. Transport.Browse (millrace's dlq.Browser) reads a topic's
//     table oldest first without moving any offset.
//   - Delayed delivery. Transport.Delay (millrace's middleware.Delayer)
//     stores a message with a due time taken from the database clock; a
//     poller of each open transport moves due messages, in one transaction,
//     to the private topic <topic>.__group.<group>, which only that
//     group's subscriptions read besides the topic itself. Order between a
//     topic and its private topic is not kept.
//
// # Where a new consumer group starts
//
// A group is new to a topic until it has a row in the topic's offsets
// table, which its first Subscribe, or SubscribeInitialize (App.Prepare),
// writes. initial_offset chooses what it then sees:
//
//	oldest (default)  every message the topic's table holds, oldest first
//	newest            what is published from then on
//
// "From then on", with newest: every message whose publish starts after
// that point is delivered. Of those being published at that moment, on
// PostgreSQL every one whose transaction had not committed is delivered,
// and so are those of transactions that committed just before while an
// older transaction was still running (a row's position is its
// transaction, see the wire format); on MySQL one whose INSERT had not
// committed may be missed. A group that exists keeps its offset whatever
// initial_offset says, and its delayed messages (Delay) are always
// delivered.
//
// # Costs of ordered delivery
//
// A subscription keeps its reading transaction open until the batch's
// messages are settled. The group's other subscriptions wait their turn
// (one reader per group at a time): they skip the group's locked offsets
// row and query again after poll_interval. On PostgreSQL, while any transaction that
// wrote (a subscription's reading one included) is open, rows committed
// after it began are not yet visible to subscribers of any topic of the
// database. On MySQL, the reader holds next-key locks: once a group has
// caught up with a topic, inserts into that topic wait until the group's
// unsettled messages are acked (or ack_deadline passes). Handlers should
// therefore be quick, and ack_deadline short enough to bound the wait.
//
// # Example
//
//	cfg := sqltransport.PostgresDefaultConfig()
//	cfg.DSN = "postgres://app:secret@db:5432/orders?sslmode=disable"
//	tr, err := sqltransport.OpenPostgres(ctx, *cfg, transports.Deps{Logger: logger})
//	if err != nil {
//		return err // the password is not in err
//	}
//	defer tr.Close()
//	sub, err := tr.Subscriber("billing")
package sql
