package saga

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Status is where a saga instance is.
type Status string

// The statuses of an instance. Running and Compensating move on by
// themselves; NeedsAttention waits for an operator ([Manager.Resume]);
// Completed, Compensated and Failed are final, and each was announced by
// its event ([SagaCompleted], [SagaCompensated], [SagaFailed]).
const (
	// Running: the steps are being run.
	Running Status = "running"
	// Compensating: a step failed; the completed steps are being undone.
	Compensating Status = "compensating"
	// NeedsAttention: a compensation failed or timed out; the saga waits
	// for Resume ([SagaNeedsAttention] said so).
	NeedsAttention Status = "needs_attention"
	// Completed: every step succeeded.
	Completed Status = "completed"
	// Compensated: a step failed and every completed step was undone.
	Compensated Status = "compensated"
	// Failed: a step failed and a completed step could not be undone (it
	// has NoCompensation).
	Failed Status = "failed"
)

// Final reports whether s is an end: completed, compensated or failed.
func (s Status) Final() bool { return s == Completed || s == Compensated || s == Failed }

// StepStatus is where one step of an instance is.
type StepStatus string

// The statuses of a step.
const (
	StepWaiting            StepStatus = ""                    // its stage has not begun
	StepPending            StepStatus = "pending"             // its command was sent
	StepSucceeded          StepStatus = "succeeded"           // a Succeeded event came
	StepFailed             StepStatus = "failed"              // a Failed event came
	StepTimedOut           StepStatus = "timed_out"           // no answer within Timeout
	StepCompensating       StepStatus = "compensating"        // its compensation was sent
	StepCompensated        StepStatus = "compensated"         // a Compensated event came
	StepCompensationFailed StepStatus = "compensation_failed" // it needs attention
	StepNotCompensable     StepStatus = "not_compensable"     // NoCompensation: left as it is
)

// StepRecord is one step of an instance.
type StepRecord struct {
	// Name is the step's name.
	Name string `json:"name"`
	// Status is where the step is.
	Status StepStatus `json:"status"`
	// Attempt counts the compensation's sends (Resume sends it again).
	Attempt int `json:"attempt,omitempty"`
	// Order is when the step succeeded among the instance's steps (1, 2,
	// ...): compensations run in the reverse of it.
	Order int `json:"order,omitempty"`
}

// Entry is one line of an instance's history: what happened, to which
// step, because of which message, when.
type Entry struct {
	// At is when it happened (UTC).
	At time.Time `json:"at"`
	// Step is the step it concerns; empty for the saga as a whole.
	Step string `json:"step,omitempty"`
	// What happened: "started", "sent", "succeeded", "failed", "timed out",
	// "compensating", "compensated", "compensation failed",
	// "compensation timed out", "not compensable", "resumed", "completed",
	// "compensated", "failed", "needs attention".
	What string `json:"what"`
	// MessageID and MessageType are the message that caused it, or that it
	// sent.
	MessageID   string `json:"message_id,omitempty"`
	MessageType string `json:"message_type,omitempty"`
	// Detail is a reason or other text.
	Detail string `json:"detail,omitempty"`
}

// Instance is one saga instance as it is stored: its state (JSON) and
// its progress and history.
type Instance struct {
	// Saga is the definition's name; ID the instance's id.
	Saga string `json:"saga"`
	ID   string `json:"id"`
	// Status is where the instance is.
	Status Status `json:"status"`
	// Version counts its stored transitions; the store refuses a save that
	// does not follow the version it read ([ErrConflict]).
	Version int64 `json:"version"`
	// State is the saga's state S, as JSON.
	State json.RawMessage `json:"state"`
	// Stage is the index of the stage being run.
	Stage int `json:"stage"`
	// Steps are the definition's steps, in definition order.
	Steps []StepRecord `json:"steps"`
	// Undo lists the steps to compensate, in the order they are undone;
	// UndoAt is the one being undone.
	Undo   []string `json:"undo,omitempty"`
	UndoAt int      `json:"undo_at,omitempty"`
	// Reason is why the saga compensates or failed: the step that failed
	// first.
	Reason string `json:"reason,omitempty"`
	// Attention is why the saga needs attention (its compensation failed
	// or timed out); cleared by [Manager.Resume].
	Attention string `json:"attention,omitempty"`
	// History is every transition, oldest first.
	History []Entry `json:"history"`
	// Created and Updated are when it started and last moved (UTC).
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Step returns the record of the step called name, or nil.
func (in *Instance) Step(name string) *StepRecord {
	for i := range in.Steps {
		if in.Steps[i].Name == name {
			return &in.Steps[i]
		}
	}
	return nil
}

// clone returns a deep copy of in.
func (in *Instance) clone() *Instance {
	c := *in
	c.State = append(json.RawMessage(nil), in.State...)
	c.Steps = append([]StepRecord(nil), in.Steps...)
	c.Undo = append([]string(nil), in.Undo...)
	c.History = append([]Entry(nil), in.History...)
	return &c
}

// Outgoing is a message a transition sends: to Topic, its command's Group
// prepared (see framework.App.Prepare) when it is a command.
type Outgoing struct {
	Topic, Group string
	Msg          *message.Message
}

// Publish sends what a transition sends, for a [Store] that cannot commit
// messages with the state itself.
type Publish func(ctx context.Context, out []Outgoing) error

// Store keeps saga instances. Implementations: [MemoryStore] (tests) and
// package saga/sql (PostgreSQL and MySQL, with the outbox). The contract,
// tested by saga/storetest, is:
//
//   - Save with expected 0 creates the instance, or returns [ErrExists] if
//     one with its saga and id exists;
//   - Save with expected n > 0 replaces the instance stored at version n,
//     or returns [ErrConflict] (another transition came first) or
//     [ErrNotFound];
//   - Save stores the messages out with the state so that both happen or
//     neither does (an outbox), or, if it cannot, calls publish with them
//     after storing;
//   - Load returns the stored instance or [ErrNotFound]; List returns the
//     instances of a saga in a status (all statuses when status is ""),
//     oldest first.
//
// Every method is safe for concurrent use, also by several processes
// sharing the store.
type Store interface {
	Load(ctx context.Context, saga, id string) (*Instance, error)
	Save(ctx context.Context, in *Instance, expected int64, out []Outgoing, publish Publish) error
	List(ctx context.Context, saga string, status Status, limit int) ([]*Instance, error)
}

// Errors of a [Store].
var (
	// ErrNotFound: no instance with this saga and id.
	ErrNotFound = errors.New("saga: instance not found")
	// ErrExists: an instance with this saga and id exists already.
	ErrExists = errors.New("saga: instance exists already")
	// ErrConflict: the instance was saved by another transition since it
	// was loaded.
	ErrConflict = errors.New("saga: instance changed since it was loaded")
)
