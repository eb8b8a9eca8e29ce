// Package saga coordinates a business flow across services that cannot
// share one database transaction: an orchestrated saga sends commands,
// reacts to the events that answer them, and when a step fails, sends the
// compensations of the steps that had completed, newest first.
//
// A saga is a typed [Definition]: its state S, what starts it, and its
// stages, each a [Step] or a [Parallel] group of steps. [Register] checks
// it and puts it on a cqrs bus; the returned [Manager] starts instances,
// reads them and resumes the ones that need attention.
//
//	def := saga.Definition[Order]{
//		Name:  "order",
//		Start: saga.StartOnCommand(func(c PlaceOrder) (string, Order) { return c.ID, Order{ID: c.ID} }),
//		Stages: []saga.Stage[Order]{
//			saga.Step[Order]{Name: "charge", Command: saga.Send(charge), Succeeded: ..., Compensation: saga.Send(refund), Compensated: ...},
//			saga.Parallel[Order]{Steps: []saga.Step[Order]{reserve, invoice}},
//			saga.Step[Order]{Name: "ship", ..., NoCompensation: true},
//		},
//	}
//	m, err := saga.Register(bus, def, store)
//
// # Messages
//
// Every message an instance sends carries saga_name, saga_id and
// saga_step ([millrace.MetadataSagaID]) and is keyed by the instance id. A
// participant needs to know nothing of sagas: a plain cqrs command handler
// that publishes its result event while it handles the command gives the
// event the same entries (middleware.Correlate), so the event finds its
// instance on any transport. Each message id is derived from the instance,
// step and attempt, so a transition stored again after a crash sends the
// same message, which the receivers' deduplication takes as a duplicate.
//
// # Persistence and concurrency
//
// The instance (state, step statuses, full history) is stored after every
// transition, with the messages the transition sends, in one transaction on
// SQL stores (package saga/sql, through the transactional outbox). Each
// save names the version it read; when two replies of one instance race on
// two consumers, the loser loads the instance again and applies its reply
// to the new version ([ConflictRetries]).
//
// # Timeouts
//
// A step's timeout is a message scheduled on the saga's control topic
// through the transport's delayed delivery (middleware.Delayer), so it
// survives restarts of the service. A step without an answer in time
// failed. A success that comes after it means the step did happen: the
// step is undone like the other completed steps, as the next compensation
// (after the one in flight, if any); an instance that had ended
// compensates it and ends again, announcing [Ended] once more. A failure
// after the timeout is ignored and logged, as are duplicates, answers to
// steps not sent yet, and other answers to instances that ended. On Kafka,
// delayed messages of a partition wait for its head: a long
// CompensationTimeout can delay a shorter timeout scheduled after it.
//
// # Compensations and attention
//
// Compensations run one at a time, each waiting for its confirming event.
// The participant's middleware retries a failing compensation as it
// retries any command; when it still fails (a CompensationFailed event, or
// no confirmation within CompensationTimeout) the instance is
// [NeedsAttention]: [AttentionNeeded] is published and the compensating
// command is put in the service's poison queue with the reason. After the
// cause is fixed, [Manager.Resume] (or `saga resume`, which publishes
// [ResumeMessage]) sends it again.
//
// Every instance ends with [Ended]: [Completed], [Compensated], or
// [Failed] when a completed step had NoCompensation.
package saga
