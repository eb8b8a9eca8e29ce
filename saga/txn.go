package saga

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/middleware"
)

// txn is one transition of an instance being made: the instance and its
// decoded state, changed in place, and what the transition sends.
type txn[S any] struct {
	m        *Manager[S]
	in       *Instance
	state    S
	cause    *message.Message // the message that caused it; nil outside a handler
	now      time.Time
	out      []Outgoing
	timeouts []pendingTimeout
	err      error
	// ignored says why the message changes nothing; the transition is
	// then not stored.
	ignored, ignoredStep string
}

// ignore drops the transition: the message changes nothing.
func (t *txn[S]) ignore(step, why string) {
	if t.ignored == "" {
		t.ignored, t.ignoredStep = why, step
	}
}

// record appends a history entry caused by t's message.
func (t *txn[S]) record(step, what, detail string) {
	e := Entry{At: t.now, Step: step, What: what, Detail: detail}
	if t.cause != nil {
		e.MessageID = t.cause.UUID
		e.MessageType = t.cause.Metadata.Get(millrace.MetadataType)
	}
	t.in.History = append(t.in.History, e)
}

// rec returns the record of step si.
func (t *txn[S]) rec(si *stepInfo[S]) *StepRecord { return &t.in.Steps[si.index] }

// enterStage sends the commands of stage i.
func (t *txn[S]) enterStage(i int) {
	t.in.Stage = i
	for _, si := range t.m.stages[i] {
		t.rec(si).Status = StepPending
		t.send(si, si.Command, false, 0)
		if si.Timeout > 0 {
			t.timeouts = append(t.timeouts, pendingTimeout{timeoutMsg{Step: si.Name}, si.Timeout})
		}
	}
}

// send adds step si's command c (its compensation when undo) to what t
// sends, with a message id of its own for the instance, step and attempt,
// so that a transition stored again after a crash sends the same message.
func (t *txn[S]) send(si *stepInfo[S], c Command[S], undo bool, attempt int) {
	topic, group, msg, err := c.build(t.m.bus, t.state)
	if err != nil {
		t.err = fmt.Errorf("saga %q: instance %s: step %s: %w", t.m.def.Name, t.in.ID, si.Name, err)
		return
	}
	kind, what := "do", "sent"
	if undo {
		kind, what = "undo."+strconv.Itoa(attempt), "compensating"
	}
	msg.UUID = deterministicID(t.m.def.Name, t.in.ID, si.Name, kind)
	t.stampSaga(msg, si.Name)
	t.out = append(t.out, Outgoing{Topic: topic, Group: group, Msg: msg})
	t.in.History = append(t.in.History, Entry{At: t.now, Step: si.Name, What: what, MessageID: msg.UUID, MessageType: c.name})
}

// stampSaga sets the saga entries of a message the instance sends.
func (t *txn[S]) stampSaga(msg *message.Message, step string) {
	md := msg.Metadata
	md.Set(millrace.MetadataSagaName, t.m.def.Name)
	md.Set(millrace.MetadataSagaID, t.in.ID)
	md.Set(millrace.MetadataSagaStep, step)
	md.Set(millrace.MetadataPartitionKey, t.in.ID)
}

// emit adds event e of the instance to what t sends.
func emit[S, E any](t *txn[S], e E, kind string) {
	topic, _, msg, err := cqrs.Message(t.m.bus, e)
	if err != nil {
		t.err = err
		return
	}
	msg.UUID = deterministicID(t.m.def.Name, t.in.ID, kind, strconv.FormatInt(t.in.Version+1, 10))
	t.stampSaga(msg, "")
	t.out = append(t.out, Outgoing{Topic: topic, Msg: msg})
}

// reply applies event e of type typ, which says it answers step (empty
// when the participant did not keep the saga entries).
func (t *txn[S]) reply(typ, step string, e any) {
	in := t.in
	si := t.m.byName[step]
	if step == "" {
		// Without a step: the one waiting step this type answers.
		for _, c := range t.m.replies[typ] {
			if s := t.rec(c).Status; s == StepPending || s == StepCompensating || s == StepCompensationFailed {
				si = c
				break
			}
		}
		if si == nil {
			t.ignore(step, typ+" answers no waiting step")
			return
		}
	}
	if si == nil {
		t.ignore(step, fmt.Sprintf("%s names step %q, which the saga does not have", typ, step))
		return
	}
	r := t.rec(si)
	ro, ok := si.answer(typ, r.Status)
	late := ok && ro.kind == succeeded && r.Status == StepTimedOut
	if in.Status.Final() && !late {
		t.ignore(step, fmt.Sprintf("%s for a saga that ended %s", typ, in.Status))
		return
	}
	if !ok {
		t.ignore(step, fmt.Sprintf("%s does not answer step %s", typ, si.Name))
		return
	}
	if late {
		t.lateSuccess(si, ro, e)
		return
	}
	switch ro.kind {
	case succeeded, failed:
		if r.Status != StepPending {
			t.ignore(si.Name, fmt.Sprintf("%s: step is %s (a duplicate, or a reply after its timeout)", typ, orWaiting(r.Status)))
			return
		}
		ro.record(&t.state, e)
		if ro.kind == succeeded {
			r.Status = StepSucceeded
			r.Order = t.nextOrder()
			t.record(si.Name, "succeeded", "")
		} else {
			r.Status = StepFailed
			t.fail(si.Name, "failed", fmt.Sprintf("step %s failed: %s", si.Name, typ))
		}
		t.settleStage()
	case compensated:
		if r.Status != StepCompensating && r.Status != StepCompensationFailed {
			t.ignore(si.Name, fmt.Sprintf("%s: step is %s, not compensating (a duplicate)", typ, orWaiting(r.Status)))
			return
		}
		ro.record(&t.state, e)
		r.Status = StepCompensated
		t.record(si.Name, "compensated", "")
		in.Status = Compensating
		in.UndoAt++
		t.nextUndo()
	case compensationFailed:
		if r.Status != StepCompensating {
			t.ignore(si.Name, fmt.Sprintf("%s: step is %s, not compensating (a duplicate)", typ, orWaiting(r.Status)))
			return
		}
		ro.record(&t.state, e)
		t.needsAttention(si, "compensation failed", fmt.Sprintf("compensation of step %s failed: %s", si.Name, typ))
	}
}

// lateSuccess applies a Succeeded event of step si that came after its
// timeout: the step did complete, so it is undone like the others. It is
// the newest completed step, so its compensation is the next one sent:
// at once if none is in flight (the saga runs, or it ended and compensates
// again), after the one in flight otherwise.
func (t *txn[S]) lateSuccess(si *stepInfo[S], ro replyOf[S], e any) {
	in := t.in
	r := t.rec(si)
	ro.record(&t.state, e)
	r.Status = StepSucceeded
	r.Order = t.nextOrder()
	t.record(si.Name, "succeeded", "after its timeout")
	switch {
	case in.Status == Running:
		t.settleStage() // the stage failed already: it compensates
	case in.Status.Final():
		in.Undo = append(in.Undo[:in.UndoAt:in.UndoAt], si.Name)
		in.Status = Compensating
		t.record("", "compensating", "step "+si.Name+" succeeded after its timeout")
		t.nextUndo()
	default: // compensating, or needs attention: after the one in flight
		in.Undo = slices.Insert(in.Undo, min(in.UndoAt+1, len(in.Undo)), si.Name)
	}
}

// timeout applies a step's timeout.
func (t *txn[S]) timeout(tm timeoutMsg) {
	si := t.m.byName[tm.Step]
	if si == nil {
		t.ignore(tm.Step, "timeout of a step the saga does not have")
		return
	}
	if t.in.Status.Final() {
		t.ignore(tm.Step, "timeout for a saga that ended "+string(t.in.Status))
		return
	}
	r := t.rec(si)
	switch {
	case !tm.Undo && r.Status == StepPending:
		r.Status = StepTimedOut
		t.fail(si.Name, "timed out", fmt.Sprintf("step %s: no answer within %s", si.Name, si.Timeout))
		t.settleStage()
	case tm.Undo && r.Status == StepCompensating && r.Attempt == tm.Attempt:
		t.needsAttention(si, "compensation timed out", fmt.Sprintf("compensation of step %s: no confirmation within %s", si.Name, si.CompensationTimeout))
	default:
		t.ignore(si.Name, "timeout of a step that was answered (step is "+string(orWaiting(r.Status))+")")
	}
}

// fail records a step's failure, the saga's reason if it has none yet.
func (t *txn[S]) fail(step, what, reason string) {
	if t.in.Reason == "" {
		t.in.Reason = reason
	}
	t.record(step, what, reason)
}

// nextOrder is the completion order of a step succeeding now.
func (t *txn[S]) nextOrder() int {
	n := 0
	for _, r := range t.in.Steps {
		n = max(n, r.Order)
	}
	return n + 1
}

// settleStage moves on once no step of the current stage waits: to the
// next stage, to the end, or to compensating.
func (t *txn[S]) settleStage() {
	in := t.in
	if in.Status != Running {
		return
	}
	ok := in.Reason == "" // a step that timed out and then succeeded
	for _, si := range t.m.stages[in.Stage] {
		switch t.rec(si).Status {
		case StepPending:
			return // wait for the others
		case StepSucceeded:
		default:
			ok = false
		}
	}
	if !ok {
		t.startUndo()
		return
	}
	if in.Stage+1 < len(t.m.stages) {
		t.enterStage(in.Stage + 1)
		return
	}
	t.end(Completed, "")
}

// startUndo begins compensating the steps that succeeded, newest first.
func (t *txn[S]) startUndo() {
	in := t.in
	var done []StepRecord
	for _, r := range in.Steps {
		if r.Status == StepSucceeded {
			done = append(done, r)
		}
	}
	slices.SortFunc(done, func(a, b StepRecord) int { return cmp.Compare(b.Order, a.Order) })
	in.Undo = in.Undo[:0]
	for _, r := range done {
		in.Undo = append(in.Undo, r.Name)
	}
	in.UndoAt = 0
	in.Status = Compensating
	t.record("", "compensating", in.Reason)
	t.nextUndo()
}

// nextUndo sends the next compensation, or ends the saga when none is
// left.
func (t *txn[S]) nextUndo() {
	in := t.in
	for in.UndoAt < len(in.Undo) {
		si := t.m.byName[in.Undo[in.UndoAt]]
		r := t.rec(si)
		if si.NoCompensation {
			r.Status = StepNotCompensable
			t.record(si.Name, "not compensable", "the step has NoCompensation")
			in.UndoAt++
			continue
		}
		t.compensate(si)
		return
	}
	var kept []string
	for _, r := range in.Steps {
		if r.Status == StepNotCompensable {
			kept = append(kept, r.Name)
		}
	}
	if len(kept) > 0 {
		t.end(Failed, fmt.Sprintf("%s; not undone: %s (NoCompensation)", in.Reason, strings.Join(kept, ", ")))
		return
	}
	t.end(Compensated, in.Reason)
}

// compensate sends si's compensation, a new attempt of it.
func (t *txn[S]) compensate(si *stepInfo[S]) {
	r := t.rec(si)
	r.Attempt++
	r.Status = StepCompensating
	t.send(si, si.Compensation, true, r.Attempt)
	if si.CompensationTimeout > 0 {
		t.timeouts = append(t.timeouts, pendingTimeout{timeoutMsg{Step: si.Name, Undo: true, Attempt: r.Attempt}, si.CompensationTimeout})
	}
}

// needsAttention parks the instance: its compensation of si failed. The
// compensating command goes to the service's poison queue with the reason,
// and AttentionNeeded is published.
func (t *txn[S]) needsAttention(si *stepInfo[S], what, reason string) {
	in := t.in
	r := t.rec(si)
	r.Status = StepCompensationFailed
	in.Status = NeedsAttention
	in.Attention = reason
	t.record(si.Name, what, reason)
	t.record("", "needs attention", reason)
	topic, group, msg, err := si.Compensation.build(t.m.bus, t.state)
	if err != nil {
		t.err = err
		return
	}
	msg.UUID = deterministicID(t.m.def.Name, in.ID, si.Name, "undo."+strconv.Itoa(r.Attempt))
	t.stampSaga(msg, si.Name)
	cfg := t.m.app.Config()
	now := t.now.Format(time.RFC3339Nano)
	md := msg.Metadata
	md.Set(millrace.MetadataPoisonReason, reason)
	md.Set(millrace.MetadataPoisonHandler, "saga."+t.m.def.Name)
	md.Set(millrace.MetadataPoisonTopic, topic)
	md.Set(millrace.MetadataPoisonGroup, group)
	md.Set(millrace.MetadataPoisonService, cfg.Service.Name)
	md.Set(millrace.MetadataPoisonAttempts, strconv.Itoa(r.Attempt))
	md.Set(millrace.MetadataPoisonFirstFailedAt, now)
	md.Set(millrace.MetadataPoisonLastFailedAt, now)
	poison := cfg.Middleware.Poison.Topic
	if poison == "" {
		poison = middleware.TopicFor(cfg.Service.Name)
	}
	t.out = append(t.out, Outgoing{Topic: poison, Msg: msg})
	emit(t, AttentionNeeded{Saga: t.m.def.Name, ID: in.ID, Step: si.Name, Reason: reason}, "attention."+strconv.Itoa(r.Attempt))
}

// resume sends the failed compensation again.
func (t *txn[S]) resume() error {
	in := t.in
	if in.Status != NeedsAttention {
		return fmt.Errorf("saga %q: resume %s: it is %s: %w", t.m.def.Name, in.ID, in.Status, ErrNotStuck)
	}
	si := t.m.byName[in.Undo[in.UndoAt]]
	in.Status = Compensating
	in.Attention = ""
	if t.lastOutcome(si.Name) == "compensation timed out" {
		// No answer: the participant may have it yet (or in its dead
		// letters). The same message id lets its deduplication take this
		// send and that one as one.
		t.record(si.Name, "resumed", "sent again with the same message id: it was not answered")
		t.compensateAgain(si)
		return nil
	}
	t.record(si.Name, "resumed", "")
	t.compensate(si)
	return nil
}

// lastOutcome is how the newest compensation attempt of step ended in the
// history: "compensation timed out" or "compensation failed" (or "").
func (t *txn[S]) lastOutcome(step string) string {
	for _, e := range slices.Backward(t.in.History) {
		if e.Step == step && (e.What == "compensation timed out" || e.What == "compensation failed") {
			return e.What
		}
	}
	return ""
}

// compensateAgain sends si's compensation attempt again, with its id.
func (t *txn[S]) compensateAgain(si *stepInfo[S]) {
	r := t.rec(si)
	r.Status = StepCompensating
	t.send(si, si.Compensation, true, r.Attempt)
	if si.CompensationTimeout > 0 {
		t.timeouts = append(t.timeouts, pendingTimeout{timeoutMsg{Step: si.Name, Undo: true, Attempt: r.Attempt}, si.CompensationTimeout})
	}
}

// end finishes the instance with status and announces it.
func (t *txn[S]) end(status Status, reason string) {
	t.in.Status = status
	t.in.Reason = reason
	t.record("", string(status), reason)
	emit(t, Ended{Saga: t.m.def.Name, ID: t.in.ID, Status: status, Reason: reason}, "ended")
}

// orWaiting names a step status for logs.
func orWaiting(s StepStatus) StepStatus {
	if s == StepWaiting {
		return "waiting"
	}
	return s
}

// sagaNamespace is the namespace of the saga's message ids.
var sagaNamespace = uuid.MustParse("6f6b2a36-2f5e-4c0e-9a51-8f6f0d3c2a10")

// deterministicID is the id of a message the instance sends: the same for
// the same saga, instance, step and kind, so a transition made again after
// a crash sends a message its receivers deduplicate.
func deterministicID(parts ...string) string {
	return uuid.NewSHA1(sagaNamespace, []byte(strings.Join(parts, "\x00"))).String()
}
