package saga_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/framework/frameworktest"
	"github.com/millrace/millrace/saga"
	"github.com/millrace/millrace/saga/sagatest"
)

// testConfig retries a failing participant twice, then once more after
// a second, then poisons it: well within the compensations' 10s timeout.
const testConfig = `
middleware:
  retry:
    max_attempts: 2
    initial_interval: 10ms
  delayed_retry:
    delays: [1s]
`

// order is the order saga running on the in-memory harness.
type order struct {
	h *frameworktest.Harness
	m *saga.Manager[sagatest.Order]
	w *sagatest.World
}

// newOrder registers the order saga and its participants; behave sets
// how they answer before the App starts.
func newOrder(t *testing.T, behave func(w *sagatest.World)) *order {
	t.Helper()
	h := frameworktest.New(t, frameworktest.WithConfig(testConfig), frameworktest.WithTimeout(time.Minute))
	w := sagatest.NewWorld("")
	if behave != nil {
		behave(w)
	}
	bus := cqrs.New(h.App, w.BusOptions()...)
	w.Register(bus)
	m, err := saga.Register(bus, w.Definition(), saga.NewMemoryStore(), w.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	return &order{h: h, m: m, w: w}
}

// start starts instance id.
func (o *order) start(id string) {
	o.h.T().Helper()
	if err := o.m.Start(context.Background(), id, sagatest.Order{ID: id, Amount: 10, Items: 2}); err != nil {
		o.h.T().Fatal(err)
	}
}

// instance returns instance id as stored.
func (o *order) instance(id string) (sagatest.Order, *saga.Instance) {
	o.h.T().Helper()
	s, in, err := o.m.Get(context.Background(), id)
	if err != nil {
		o.h.T().Fatal(err)
	}
	return s, in
}

// waitStatus waits until instance id is in status.
func (o *order) waitStatus(id string, status saga.Status) *saga.Instance {
	o.h.T().Helper()
	var in *saga.Instance
	o.h.WaitUntil(fmt.Sprintf("saga %s to be %s", id, status), func() bool {
		var err error
		_, in, err = o.m.Get(context.Background(), id)
		if errors.Is(err, saga.ErrNotFound) {
			return false
		}
		if err != nil {
			o.h.T().Fatal(err)
		}
		return in.Status == status
	})
	return in
}

func TestSaga_HappyPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrder(t, nil)
		o.start("o-1")
		in := o.waitStatus("o-1", saga.Completed)
		s, _ := o.instance("o-1")
		if s.PaymentID != "pay-o-1" || s.Reservation != "res-o-1" || s.Tracking != "trk-o-1" {
			t.Errorf("state %+v: the replies were not recorded", s)
		}
		applied := o.w.Applied("o-1")
		if len(applied) != 4 || applied[0] != "do:create" || applied[3] != "do:ship" ||
			!slices.Contains(applied, "do:charge") || !slices.Contains(applied, "do:reserve") {
			t.Errorf("applied %v, want create, then charge and reserve, then ship", applied)
		}
		for _, r := range in.Steps {
			if r.Status != saga.StepSucceeded {
				t.Errorf("step %s is %s", r.Name, r.Status)
			}
		}
		ended := frameworktest.WaitPublished[saga.Ended](o.h, "saga.ended", 1)
		if ended[0] != (saga.Ended{Saga: "order", ID: "o-1", Status: saga.Completed}) {
			t.Errorf("ended %+v", ended[0])
		}
		var whats []string
		for _, e := range in.History {
			if e.At.IsZero() {
				t.Errorf("history entry %+v has no time", e)
			}
			whats = append(whats, e.Step+":"+e.What)
		}
		for _, want := range []string{":started", "create:sent", "create:succeeded", "charge:sent", "reserve:sent", "ship:succeeded", ":completed"} {
			if !slices.Contains(whats, want) {
				t.Errorf("history %v lacks %s", whats, want)
			}
		}
	})
}

// completedInOrder returns the steps the participants applied for id,
// in order.
func completedInOrder(w *sagatest.World, id string) []string {
	var out []string
	for _, a := range w.Applied(id) {
		if s, ok := strings.CutPrefix(a, "do:"); ok {
			out = append(out, s)
		}
	}
	return out
}

func TestSaga_FailureAtEachStepCompensatesTheCompletedStepsInReverse(t *testing.T) {
	for _, tc := range []struct {
		step    string
		how     sagatest.Behaviour
		status  saga.Status
		undoAll []string // the steps that must be undone, in any order
	}{
		{"create", sagatest.Decline, saga.Compensated, nil},
		{"charge", sagatest.Decline, saga.Compensated, []string{"create", "reserve"}},
		{"reserve", sagatest.Decline, saga.Compensated, []string{"create", "charge"}},
		{"ship", sagatest.Decline, saga.Compensated, []string{"create", "charge", "reserve"}},
		{"reserve", sagatest.Silent, saga.Compensated, []string{"create", "charge"}},
	} {
		t.Run(fmt.Sprintf("%s_%d", tc.step, tc.how), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				o := newOrder(t, func(w *sagatest.World) { w.Behave(tc.step, tc.how) })
				o.start("o-1")
				in := o.waitStatus("o-1", tc.status)
				// Newest first: the reverse of the order the saga learned
				// of their success (two parallel participants may apply in
				// one order and answer in the other).
				var done []string
				for _, e := range in.History {
					if e.What == "succeeded" {
						done = append(done, e.Step)
					}
				}
				slices.Reverse(done)
				if applied := completedInOrder(o.w, "o-1"); len(applied) != len(done) {
					t.Errorf("participants applied %v; the saga took %v as completed", applied, done)
				}
				if got := o.w.Undone("o-1"); !slices.Equal(got, done) {
					t.Errorf("compensations %v, want the completed steps %v in reverse", got, done)
				}
				got := slices.Sorted(slices.Values(o.w.Undone("o-1")))
				if !slices.Equal(got, slices.Sorted(slices.Values(tc.undoAll))) {
					t.Errorf("compensated %v, want %v", got, tc.undoAll)
				}
				if in.Reason == "" || !strings.Contains(in.Reason, tc.step) {
					t.Errorf("reason %q does not name step %s", in.Reason, tc.step)
				}
				if tw := o.w.Twice(); len(tw) > 0 {
					t.Errorf("applied twice: %v", tw)
				}
				ended := frameworktest.WaitPublished[saga.Ended](o.h, "saga.ended", 1)
				if ended[0].Status != tc.status || ended[0].Reason != in.Reason {
					t.Errorf("ended %+v, want %s with the reason %q", ended[0], tc.status, in.Reason)
				}
			})
		})
	}
}

func TestSaga_ParallelBranchFailsWhileTheOtherIsSlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// reserve answers late: the saga waits for it before it
		// compensates, so that it compensates it too.
		o := newOrder(t, func(w *sagatest.World) {
			w.Behave("charge", sagatest.Decline)
			w.Behave("reserve", sagatest.Silent)
		})
		o.start("o-1")
		o.h.WaitUntil("charge declined", func() bool {
			_, in := o.instance("o-1")
			return in.Step("charge").Status == saga.StepFailed
		})
		o.h.Advance(time.Second)
		if _, in := o.instance("o-1"); in.Status != saga.Running || in.Step("reserve").Status != saga.StepPending {
			t.Fatalf("status %s, reserve %s: the saga must wait for the other branch", in.Status, in.Step("reserve").Status)
		}
		publishReply(o.h, "stock.events", sagatest.StockReserved{ID: "o-1", Reservation: "late-but-in-time"}, "o-1", "reserve")
		o.waitStatus("o-1", saga.Compensated)
		if got := o.w.Undone("o-1"); !slices.Equal(got, []string{"reserve", "create"}) {
			t.Errorf("compensations %v, want reserve then create", got)
		}
		if s, _ := o.instance("o-1"); s.Reservation != "late-but-in-time" || !s.Released || !s.Cancelled {
			t.Errorf("state %+v", s)
		}
	})
}

// publishReply publishes event e on topic as a participant of step of
// instance id would.
func publishReply(h *frameworktest.Harness, topic string, e any, id, step string) {
	h.T().Helper()
	h.Publish(topic, e,
		framework.WithMetadata(millrace.MetadataType, cqrsName(e)),
		framework.WithMetadata(millrace.MetadataSagaName, "order"),
		framework.WithMetadata(millrace.MetadataSagaID, id),
		framework.WithMetadata(millrace.MetadataSagaStep, step),
	)
}

// cqrsName is e's message type.
func cqrsName(e any) string { return framework.TypeName(e) }

func TestSaga_TimeoutCompensatesAndALateSuccessIsUndone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrder(t, func(w *sagatest.World) { w.Behave("charge", sagatest.Silent) })
		o.start("o-1")
		in := o.waitStatus("o-1", saga.Compensated)
		if r := in.Step("charge"); r.Status != saga.StepTimedOut {
			t.Errorf("charge is %s, want timed out", r.Status)
		}
		if !strings.Contains(in.Reason, "no answer within 5s") {
			t.Errorf("reason %q", in.Reason)
		}
		if slices.Contains(o.w.Applied("o-1"), "undo:charge") {
			t.Fatal("charge was refunded before it succeeded")
		}
		// The charge did happen after all: the customer must be refunded.
		publishReply(o.h, "payments.events", sagatest.PaymentCharged{ID: "o-1", PaymentID: "late"}, "o-1", "charge")
		o.h.WaitUntil("the late charge to be refunded", func() bool {
			_, in := o.instance("o-1")
			return in.Step("charge").Status == saga.StepCompensated && in.Status == saga.Compensated
		})
		if applied := o.w.Applied("o-1"); !slices.Contains(applied, "undo:charge") {
			t.Errorf("applied %v: no refund", applied)
		}
		// A duplicate of the late reply changes nothing more.
		_, done := o.instance("o-1")
		before := o.m.Stats().Ignored
		publishReply(o.h, "payments.events", sagatest.PaymentCharged{ID: "o-1", PaymentID: "late"}, "o-1", "charge")
		o.h.WaitUntil("the duplicate to be ignored", func() bool { return o.m.Stats().Ignored > before })
		if _, after := o.instance("o-1"); after.Version != done.Version {
			t.Errorf("the duplicate changed the instance: version %d -> %d", done.Version, after.Version)
		}
	})
}

func TestSaga_LateSuccessOfAStepWithoutCompensationFailsTheSaga(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrder(t, func(w *sagatest.World) { w.Behave("ship", sagatest.Silent) })
		o.start("o-1")
		o.waitStatus("o-1", saga.Compensated)
		publishReply(o.h, "shipping.events", sagatest.ShippingScheduled{ID: "o-1", Tracking: "late"}, "o-1", "ship")
		in := o.waitStatus("o-1", saga.Failed)
		if r := in.Step("ship"); r.Status != saga.StepNotCompensable || !strings.Contains(in.Reason, "not undone: ship") {
			t.Errorf("ship is %s, reason %q", r.Status, in.Reason)
		}
	})
}

func TestSaga_DuplicateAndOutOfOrderRepliesAreIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrder(t, func(w *sagatest.World) { w.Behave("charge", sagatest.Silent) })
		o.start("o-1")
		o.h.WaitUntil("reserve to succeed", func() bool {
			_, in := o.instance("o-1")
			return in.Step("reserve").Status == saga.StepSucceeded
		})
		_, mid := o.instance("o-1")
		// Out of order: ship's reply before ship was sent; duplicates:
		// create's and reserve's again; one without its step.
		publishReply(o.h, "shipping.events", sagatest.ShippingScheduled{ID: "o-1", Tracking: "early"}, "o-1", "ship")
		publishReply(o.h, "orders.events", sagatest.OrderCreated{ID: "o-1"}, "o-1", "create")
		publishReply(o.h, "stock.events", sagatest.StockReserved{ID: "o-1", Reservation: "again"}, "o-1", "reserve")
		publishReply(o.h, "stock.events", sagatest.StockReserved{ID: "o-1", Reservation: "no step"}, "o-1", "")
		o.h.WaitUntil("four ignored replies", func() bool { return o.m.Stats().Ignored >= 4 })
		s, in := o.instance("o-1")
		if in.Version != mid.Version || s.Reservation != "res-o-1" || s.Tracking != "" {
			t.Fatalf("ignored replies changed the instance: %+v (version %d, was %d)", s, in.Version, mid.Version)
		}
		publishReply(o.h, "payments.events", sagatest.PaymentCharged{ID: "o-1", PaymentID: "p"}, "o-1", "charge")
		publishReply(o.h, "payments.events", sagatest.PaymentCharged{ID: "o-1", PaymentID: "p2"}, "o-1", "charge")
		o.waitStatus("o-1", saga.Completed)
		if s, _ := o.instance("o-1"); s.PaymentID != "p" || s.Tracking != "trk-o-1" {
			t.Errorf("state %+v: want the first charge reply and the real shipping", s)
		}
		if tw := o.w.Twice(); len(tw) > 0 {
			t.Errorf("applied twice: %v", tw)
		}
	})
}

func TestSaga_ReplyForAFinishedSagaIsLoggedNotApplied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrder(t, nil)
		o.start("o-1")
		done := o.waitStatus("o-1", saga.Completed)
		publishReply(o.h, "payments.events", sagatest.PaymentDeclined{ID: "o-1", Reason: "too late"}, "o-1", "charge")
		o.h.WaitUntil("the reply to be ignored", func() bool { return o.m.Stats().Ignored == 1 })
		if s, in := o.instance("o-1"); in.Version != done.Version || s.Declined != "" {
			t.Errorf("a reply for a finished saga changed it")
		}
	})
}

func TestSaga_StartedByItsCommandOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrder(t, nil)
		for range 2 {
			o.h.Publish("orders.place", sagatest.PlaceOrder{ID: "o-9", Amount: 1, Items: 1},
				framework.WithMetadata(millrace.MetadataType, "PlaceOrder"))
		}
		o.waitStatus("o-9", saga.Completed)
		o.h.WaitUntil("the second start to be ignored", func() bool { return o.m.Stats().Ignored >= 1 })
		if st := o.m.Stats(); st.Started != 1 {
			t.Errorf("started %d instances, want 1", st.Started)
		}
		if err := o.m.Start(context.Background(), "o-9", sagatest.Order{}); err == nil || !strings.Contains(err.Error(), "exists") {
			t.Errorf("Start of an existing instance: %v", err)
		}
	})
}

func TestSaga_CompensationFailureThenResume(t *testing.T) {
	for _, tc := range []struct {
		name string
		how  sagatest.Behaviour
		why  string
		// ids is how many message ids the refund was sent with: after no
		// answer, the resume reuses the unanswered one.
		ids int
	}{
		{"refund fails in its handler and is poisoned", sagatest.Error, "no confirmation within 10s", 1},
		{"refund answers that it failed", sagatest.Decline, "RefundFailed", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				o := newOrder(t, func(w *sagatest.World) {
					w.Behave("ship", sagatest.Decline)
					w.Behave("undo:charge", tc.how)
				})
				o.start("o-1")
				in := o.waitStatus("o-1", saga.NeedsAttention)
				if !strings.Contains(in.Attention, tc.why) || !strings.Contains(in.Attention, "charge") {
					t.Errorf("attention %q, want it to say %q about charge", in.Attention, tc.why)
				}
				if !strings.Contains(in.Reason, "ship") {
					t.Errorf("reason %q, want why it compensates: ship", in.Reason)
				}
				att := frameworktest.WaitPublished[saga.AttentionNeeded](o.h, "saga.attention", 1)
				if att[0].Step != "charge" || att[0].Reason != in.Attention {
					t.Errorf("attention event %+v", att[0])
				}
				var poisoned bool
				for _, m := range o.h.Messages(o.h.PoisonTopic()) {
					if m.Metadata.Get(millrace.MetadataPoisonHandler) == "saga.order" &&
						m.Metadata.Get(millrace.MetadataPoisonReason) == in.Attention &&
						m.Metadata.Get(millrace.MetadataPoisonTopic) == "payments.refund" {
						poisoned = true
					}
				}
				if !poisoned {
					t.Errorf("the refund is not in the poison queue with the reason %q", in.Attention)
				}
				if err := o.m.Resume(context.Background(), "nobody"); err == nil {
					t.Error("Resume of an unknown instance succeeded")
				}
				// The operator fixes the cause and resumes.
				o.w.Behave("undo:charge", sagatest.Succeed)
				if err := o.m.Resume(context.Background(), "o-1"); err != nil {
					t.Fatal(err)
				}
				done := o.waitStatus("o-1", saga.Compensated)
				ended := frameworktest.WaitPublished[saga.Ended](o.h, "saga.ended", 1)
				if !strings.Contains(done.Reason, "ship") || ended[0].Reason != done.Reason || done.Attention != "" {
					t.Errorf("ended with reason %q (event %q), attention %q: want why it compensated (ship)", done.Reason, ended[0].Reason, done.Attention)
				}
				if err := o.m.Resume(context.Background(), "o-1"); err == nil || !strings.Contains(err.Error(), "does not need attention") {
					t.Errorf("second Resume: %v", err)
				}
				if got := o.w.Undone("o-1"); !slices.Contains(got, "charge") || !slices.Contains(got, "create") || got[len(got)-1] != "create" {
					t.Errorf("compensations %v", got)
				}
				if tw := o.w.Twice(); len(tw) > 0 {
					t.Errorf("applied twice: %v", tw)
				}
				var ids []string
				for _, m := range o.h.Messages("payments.refund") {
					if m.Metadata.Get(millrace.MetadataSagaID) == "o-1" && !slices.Contains(ids, m.UUID) {
						ids = append(ids, m.UUID)
					}
				}
				if len(ids) != tc.ids {
					t.Errorf("the refund was sent with %d message ids, want %d", len(ids), tc.ids)
				}
			})
		})
	}
}

func TestSaga_ResumeRequestOnTheControlTopic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOrder(t, func(w *sagatest.World) {
			w.Behave("ship", sagatest.Decline)
			w.Behave("undo:reserve", sagatest.Decline)
		})
		o.start("o-1")
		o.waitStatus("o-1", saga.Compensating) // release has no failure event: it is retried, then poisoned
		o.waitStatus("o-1", saga.NeedsAttention)
		o.w.Behave("undo:reserve", sagatest.Succeed)
		// A request for another saga sharing the control topic is not this
		// one's.
		before := o.m.Stats().Ignored
		if err := o.h.App.PublishMessage(context.Background(), "saga.order", saga.ResumeMessage("invoice", "o-1")); err != nil {
			t.Fatal(err)
		}
		o.h.WaitUntil("the other saga's request to be ignored", func() bool { return o.m.Stats().Ignored > before })
		if _, in := o.instance("o-1"); in.Status != saga.NeedsAttention {
			t.Fatalf("another saga's resume request resumed o-1: %s", in.Status)
		}
		if err := o.h.App.PublishMessage(context.Background(), "saga.order", saga.ResumeMessage("order", "o-1")); err != nil {
			t.Fatal(err)
		}
		o.waitStatus("o-1", saga.Compensated)
	})
}
