// Command dlq lists and replays the messages a millrace service's poison
// queue set aside (its dead-letter topic).
//
//	go run ./cmd/dlq -config service.yaml list [filters]
//	go run ./cmd/dlq -config service.yaml replay [filters] [-all]
//
// It loads the service's config exactly as the service does (the YAML file
// given by -config or MILLRACE_CONFIG, plus MILLRACE_* overrides), opens the
// configured transport and reads the poison topic: -poison-topic, else the
// config's middleware.poison.topic, else "<service.name>.poison", as the
// service's poison queue does. The transport must be
// able to read a topic without consuming it ([dlq.Browser]); otherwise dlq
// says which transport kind cannot.
//
// list prints one line per matching dead letter: id, handler, original
// topic, attempts, earlier replays, last failure and reason. replay
// publishes each matching dead letter back to its original topic without
// its poison and retry metadata and with replay_count increased (see
// [dlq.Replay]), then prints what it replayed and skipped. A replay with no
// filter needs -all.
//
// A message that was replayed and failed again is in the poison topic once
// per failure, but it is one dead letter: list shows it once, with its
// latest failure (the highest replay_count, then the latest
// poison_last_failed_at, then the latest position), and replay sends it
// once. The filters apply to that latest failure only. Two handlers that
// failed the same message are two lines with the same id, sent as one
// replay (see [dlq.List]).
//
// Filters (all that are given must hold):
//
//	-handler NAME       the handler that failed
//	-topic NAME         the original topic
//	-error TEXT         text the failure reason contains (ignoring case)
//	-since RFC3339      last failure at or after this time
//	-until RFC3339      last failure before this time
//	-id ID              only this message id (repeatable)
//	-exclude-id ID      never this message id (repeatable)
//
// The poison topic is a log: replay removes nothing, and replaying again
// with the same filters publishes the same messages again. A replay that
// succeeds writes nothing to the poison topic, so dlq cannot tell it from
// one not handled yet: the message stays listed, with its failure from
// before the replay, and a second replay sends it again (a handler whose
// dedup store still has its mark skips it). Scope a second replay with
// -since, -id or -exclude-id.
//
// The memory transport keeps messages inside the service's process: dlq
// opens a broker of its own, which is empty, so on memory it shows nothing
// (it says so). It is for brokers that outlive a process.
//
// Exit status: 0 on success, 1 when the config, the transport or the
// operation fails, 2 for a usage error.
package main
