package saga_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"pgregory.net/rapid"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/saga"
	"github.com/millrace/millrace/saga/sagatest"
)

// The order saga driven by a test that plays every participant: random
// replies, failures, duplicates, replies to steps not sent yet, replies
// without their step, compensation failures, resumes and the passing of
// time (timeouts) in random interleavings. Whatever happens, every saga
// ends, and it compensated exactly the steps it took as completed, each
// once (again only after a resume), newest first.

// reply is an answer the test can send: the event for step, of kind.
type reply struct {
	step, topic string
	event       any
}

var replies = []reply{
	{"create", "orders.events", sagatest.OrderCreated{ID: "x"}},
	{"create", "orders.events", sagatest.OrderRejected{ID: "x"}},
	{"create", "orders.events", sagatest.OrderCancelled{ID: "x"}},
	{"charge", "payments.events", sagatest.PaymentCharged{ID: "x", PaymentID: "p"}},
	{"charge", "payments.events", sagatest.PaymentDeclined{ID: "x"}},
	{"charge", "payments.events", sagatest.PaymentRefunded{ID: "x"}},
	{"charge", "payments.events", sagatest.RefundFailed{ID: "x"}},
	{"reserve", "stock.events", sagatest.StockReserved{ID: "x", Reservation: "r"}},
	{"reserve", "stock.events", sagatest.OutOfStock{ID: "x"}},
	{"reserve", "stock.events", sagatest.StockReleased{ID: "x"}},
	{"ship", "shipping.events", sagatest.ShippingScheduled{ID: "x", Tracking: "t"}},
	{"ship", "shipping.events", sagatest.ShippingFailed{ID: "x"}},
}

// undoTopics are the topics of the compensating commands, by step.
var undoTopics = map[string]string{"create": "orders.cancel", "charge": "payments.refund", "reserve": "stock.release"}

func TestSaga_PropertyRandomInterleavings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrder(t, func(w *sagatest.World) {
			for _, s := range sagatest.Steps {
				w.Behave(s, sagatest.Silent)
				w.Behave("undo:"+s, sagatest.Silent)
			}
		})
		ctx := context.Background()
		n := 0
		ends := map[saga.Status]int{}
		attention := 0
		defer func() { t.Logf("%d sagas: %v; %d needed attention", n, ends, attention) }()
		rapid.Check(noDeadline{t}, func(rt *rapid.T) {
			n++
			id := fmt.Sprintf("p-%d", n)
			if err := o.m.Start(ctx, id, sagatest.Order{ID: id}); err != nil {
				rt.Fatal(err)
			}
			o.h.Advance(0)
			var sent []reply
			send := func(r reply, withStep bool) {
				step := r.step
				if !withStep {
					step = ""
				}
				publishReply(o.h, r.topic, r.event, id, step)
				o.h.Advance(0)
			}
			actions := rapid.IntRange(0, 30).Draw(rt, "actions")
			for range actions {
				switch rapid.IntRange(0, 4).Draw(rt, "action") {
				case 0, 1:
					r := rapid.SampledFrom(replies).Draw(rt, "reply")
					send(r, rapid.Bool().Draw(rt, "with step"))
					sent = append(sent, r)
				case 2:
					if len(sent) > 0 {
						send(rapid.SampledFrom(sent).Draw(rt, "duplicate"), true)
					}
				case 3:
					o.h.Advance(rapid.SampledFrom([]time.Duration{time.Second, 3 * time.Second, 6 * time.Second, 11 * time.Second}).Draw(rt, "wait"))
				case 4:
					_ = o.m.Resume(ctx, id)
					o.h.Advance(0)
				}
			}
			// Let it end: answer what waits, well.
			var in *saga.Instance
			for range 50 {
				_, in = o.instance(id)
				if in.Status.Final() {
					break
				}
				if in.Status == saga.NeedsAttention {
					if err := o.m.Resume(ctx, id); err != nil {
						rt.Fatal(err)
					}
				}
				_, in = o.instance(id)
				for _, r := range in.Steps {
					for _, rep := range replies {
						if rep.step != r.Name {
							continue
						}
						name := fmt.Sprintf("%T", rep.event)
						good := (r.Status == saga.StepPending && slices.Contains([]string{"sagatest.OrderCreated", "sagatest.PaymentCharged", "sagatest.StockReserved", "sagatest.ShippingScheduled"}, name)) ||
							(r.Status == saga.StepCompensating && slices.Contains([]string{"sagatest.OrderCancelled", "sagatest.PaymentRefunded", "sagatest.StockReleased"}, name))
						if good {
							send(rep, true)
						}
					}
				}
			}
			if !in.Status.Final() {
				rt.Fatalf("saga %s did not end: %s\n%s", id, in.Status, history(in))
			}
			ends[in.Status]++
			if slices.ContainsFunc(in.History, func(e saga.Entry) bool { return e.What == "needs attention" }) {
				attention++
			}
			checkCompensations(rt, o, id, in)
		})
	})
}

// checkCompensations checks that instance in compensated exactly the steps
// it took as completed, each once per attempt, newest first.
func checkCompensations(rt *rapid.T, o *order, id string, in *saga.Instance) {
	var succeeded, undoneFirst []string
	resumed := map[string]int{}
	for _, e := range in.History {
		switch e.What {
		case "succeeded":
			succeeded = append(succeeded, e.Step)
		case "resumed":
			if !strings.Contains(e.Detail, "same message id") {
				resumed[e.Step]++
			}
		}
	}
	sends := map[string]int{}
	var firstSend []struct {
		step string
		at   int
	}
	for step, topic := range undoTopics {
		var ids []string
		for i, m := range o.h.Messages(topic) {
			if m.Metadata.Get(millrace.MetadataSagaID) == id && !slices.Contains(ids, m.UUID) {
				ids = append(ids, m.UUID)
				if len(ids) == 1 {
					firstSend = append(firstSend, struct {
						step string
						at   int
					}{step, i})
				}
			}
		}
		sends[step] = len(ids)
		if len(ids) > 0 && !slices.Contains(succeeded, step) {
			rt.Fatalf("%s: step %s compensated but it never succeeded (succeeded: %v)\n%s", id, step, succeeded, history(in))
		}
		if len(ids) > 0 && len(ids) != 1+resumed[step] {
			rt.Fatalf("%s: compensation of %s sent %d times with %d resumes\n%s", id, step, len(ids), resumed[step], history(in))
		}
	}
	// Order: from the history, where sends are recorded in order. Each
	// first send is of the newest completed step not undone yet, but for
	// a step that succeeded (after its timeout) while another's
	// compensation was in flight: it comes right after that one.
	var done []string // completed, not yet being undone; oldest first
	for _, e := range in.History {
		switch {
		case e.What == "succeeded":
			done = append(done, e.Step)
		case e.What == "compensating" && e.Step != "" && !slices.Contains(undoneFirst, e.Step):
			undoneFirst = append(undoneFirst, e.Step)
			done = slices.DeleteFunc(done, func(s string) bool { return s == "ship" })
			if len(done) == 0 || done[len(done)-1] != e.Step {
				rt.Fatalf("%s: compensation of %s sent while the newest completed step not undone is %v\n%s", id, e.Step, done, history(in))
			}
			done = done[:len(done)-1]
		}
	}
	want := slices.Clone(succeeded)
	want = slices.DeleteFunc(want, func(s string) bool { return s == "ship" })
	switch in.Status {
	case saga.Completed:
		if len(undoneFirst) > 0 || len(succeeded) != 4 {
			rt.Fatalf("%s completed with succeeded %v, compensations %v", id, succeeded, undoneFirst)
		}
	case saga.Failed:
		// Only when ship succeeded after its timeout: it cannot be undone.
		if r := in.Step("ship"); r.Status != saga.StepNotCompensable {
			rt.Fatalf("%s failed but ship is %s\n%s", id, r.Status, history(in))
		}
		fallthrough
	case saga.Compensated:
		if got := slices.Sorted(slices.Values(undoneFirst)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			rt.Fatalf("%s: compensations %v, want every completed step %v\n%s", id, undoneFirst, want, history(in))
		}
		for _, s := range want {
			if r := in.Step(s); r.Status != saga.StepCompensated || sends[s] == 0 {
				rt.Fatalf("%s: step %s is %s after compensating (%d sends)", id, s, r.Status, sends[s])
			}
		}
	default:
		rt.Fatalf("%s ended %s: the order saga can only complete or compensate\n%s", id, in.Status, history(in))
	}
}

// noDeadline hides testing.T's Deadline, which rapid asks for and a
// synctest bubble refuses.
type noDeadline struct{ testing.TB }

// history renders an instance's history for failure messages.
func history(in *saga.Instance) string {
	var b []byte
	for _, e := range in.History {
		b = fmt.Appendf(b, "  %s %-8s %-22s %s %s\n", e.At.Format("15:04:05.000"), e.Step, e.What, e.MessageType, e.Detail)
	}
	return string(b)
}
