// Package dlq lets operators see and act on a service's poison queue (its
// dead-letter topic): list the messages that were set aside, filtered by
// handler, original topic, error text or time, and replay them to the topic
// they came from once the cause is fixed.
//
// A message in the poison topic carries the poison_* metadata of package
// [millrace] (reason, handler, original topic, group, service, attempts,
// first and last failure). [Entry] is that metadata parsed; [Filter]
// selects entries.
//
// The poison topic is read as a log through [Browser], which transports
// implement where they can read a topic without consuming it (the memory
// transport: Broker.Browse, over the topic's retained messages). Nothing
// here removes a message from the poison topic: a log cannot delete. A
// replay is recorded on the replayed message instead
// ([millrace.MetadataReplayCount]), and running [Replay] again with the
// same filter replays the same messages again; scope a repeated replay
// with [Filter.Since], [Filter.IDs] or [Filter.ExcludeIDs].
//
// A message replayed and set aside again is in the log once per failure.
// [List] and [Replay] see it once, as a dead letter with its latest failure
// (the highest replay count, then the latest failure time, then the latest
// position), and a [Filter] applies to that failure. A replay that succeeds
// leaves no trace in the poison topic, so its message stays listed with the
// failure from before the replay (see [List]).
//
// # Example
//
//	entries, err := dlq.List(ctx, broker, "shop.poison", dlq.Filter{Handler: "place-order"})
//	...
//	report, err := dlq.Replay(ctx, broker, broker, "shop.poison", dlq.Filter{
//		Handler:       "place-order",
//		ErrorContains: "connection refused",
//	})
//	fmt.Println(len(report.Replayed), "replayed,", len(report.Skipped), "skipped")
//
// The command cmd/dlq does this from a service's config file.
package dlq
