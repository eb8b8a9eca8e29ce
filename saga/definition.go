package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/framework"
)

// Definition is a saga, typed by its state S: what starts it, and its
// stages, run in order. A stage is a [Step] or a [Parallel] group. S is
// stored as JSON after every transition, so its fields must survive
// encoding/json.
//
// [Register] checks the definition before anything runs and reports every
// problem at once: an empty or duplicate name, a step without a command or
// without a success event, a compensation without the event that confirms
// it, a step that neither has a compensation nor says NoCompensation, an
// event type a step both succeeds and fails with, a reply that was not made
// with [On].
type Definition[S any] struct {
	// Name names the saga; it is stamped on every message of its instances
	// (saga_name) and names its handlers and control topic. Required.
	Name string
	// Start, if set, starts an instance for every event or command it
	// takes ([StartOnEvent], [StartOnCommand]). Without it, instances
	// start only through [Manager.Start].
	Start Trigger[S]
	// Stages run one after the other; at least one.
	Stages []Stage[S]
}

// Stage is one stage of a saga: a [Step], or a [Parallel] group of steps.
type Stage[S any] interface {
	steps() []Step[S]
}

// Step is one step of a saga: the command it sends, built from the state,
// and the events that answer it. The events reach the saga through the
// participant's handler: it publishes them while it handles the command,
// so they carry the command's saga entries (see millrace.MetadataSagaID).
//
// If any Failed event comes, or no Succeeded event within Timeout, the step
// failed: the saga compensates the steps that completed before, newest
// first. Each of those sends its Compensation and waits for a Compensated
// event (within CompensationTimeout, if set); a CompensationFailed event or
// that timeout marks the saga [NeedsAttention] until [Manager.Resume].
type Step[S any] struct {
	// Name names the step in the saga; required, unique in the saga.
	Name string
	// Command is the command the step sends ([Send]); required.
	Command Command[S]
	// Succeeded are the events that mean the step succeeded, each with the
	// function that records it into the state ([On]); at least one.
	Succeeded []Reply[S]
	// Failed are the events that mean the step failed ([On]).
	Failed []Reply[S]
	// Timeout is how long the step waits for one of its events; after it,
	// the step counts as failed. A Succeeded event that comes later makes
	// it completed after all, and it is compensated; a Failed one is
	// ignored. 0 waits without end.
	Timeout time.Duration
	// Compensation is the command that undoes the step once it succeeded,
	// sent when a later step fails ([Send]). A step has one, or says
	// NoCompensation.
	Compensation Command[S]
	// Compensated are the events that confirm the compensation ([On]);
	// at least one when Compensation is set.
	Compensated []Reply[S]
	// CompensationFailed are the events that mean the compensation failed:
	// the saga then needs attention.
	CompensationFailed []Reply[S]
	// CompensationTimeout is how long the compensation may take before the
	// saga needs attention; 0 waits without end. Set it above the time the
	// participant's middleware takes to give up (its retries and delayed
	// retries), so that a compensation is not declared failed while it is
	// still being retried.
	CompensationTimeout time.Duration
	// NoCompensation says that the step cannot be undone (sending a
	// parcel, an email): when a later step fails, the saga compensates the
	// steps that can be, and ends [Failed] instead of [Compensated].
	NoCompensation bool
}

func (s Step[S]) steps() []Step[S] { return []Step[S]{s} }

// Parallel is a group of steps sent at once. The saga goes on when every
// one of them succeeded; when one fails, it waits for the others' answers
// (or timeouts) and then compensates every step that completed, in this
// group and before it, newest first.
type Parallel[S any] struct {
	// Steps are the group's steps; at least two.
	Steps []Step[S]
}

func (p Parallel[S]) steps() []Step[S] { return p.Steps }

// Command is a command a step sends, built from the saga's state by a
// function given to [Send].
type Command[S any] struct {
	name  string
	build func(b *cqrs.Bus, s S) (topic, group string, msg *message.Message, err error)
}

// Send returns the [Command] that build makes from the saga's state. C is
// sent as [cqrs.Send] sends it (its topic, [cqrs.Route], its handler's
// group), keyed by the saga id, with the saga's entries in its metadata.
func Send[S, C any](build func(s S) C) Command[S] {
	return Command[S]{
		name: cqrs.Name[C](),
		build: func(b *cqrs.Bus, s S) (string, string, *message.Message, error) {
			return cqrs.Message(b, build(s))
		},
	}
}

// Reply is an event type that answers a step or its compensation, with the
// function that records it into the state; made by [On].
type Reply[S any] struct {
	name   string
	topic  func(b *cqrs.Bus) string
	decode func(b *cqrs.Bus, msg *message.Message) (any, error)
	record func(s *S, e any)
	on     func(fn func(ctx context.Context, e any) error) cqrs.EventHandler
}

// On returns the [Reply] of events of type E: when one answers its step,
// record (if not nil) writes what it says into the state, which is then
// stored.
func On[S, E any](record func(s *S, e E)) Reply[S] {
	return Reply[S]{
		name:  cqrs.Name[E](),
		topic: cqrs.Topic[E],
		record: func(s *S, e any) {
			if record != nil {
				record(s, e.(E))
			}
		},
		on: func(fn func(ctx context.Context, e any) error) cqrs.EventHandler {
			return cqrs.On(func(ctx context.Context, e E) error { return fn(ctx, e) })
		},
	}
}

// Trigger starts saga instances from an event or a command; made by
// [StartOnEvent] or [StartOnCommand].
type Trigger[S any] struct {
	name     string
	register func(b *cqrs.Bus, handler string, start func(ctx context.Context, id string, s S) error, opts []framework.HandlerOption)
}

// StartOnEvent starts an instance for every event of type E: begin returns
// its id and initial state. An event whose instance exists already (a
// redelivery) starts nothing.
func StartOnEvent[S, E any](begin func(e E) (id string, s S)) Trigger[S] {
	return Trigger[S]{
		name: cqrs.Name[E](),
		register: func(b *cqrs.Bus, handler string, start func(context.Context, string, S) error, opts []framework.HandlerOption) {
			cqrs.HandleEvent(b, handler, func(ctx context.Context, e E) error {
				id, s := begin(e)
				return start(ctx, id, s)
			}, opts...)
		},
	}
}

// StartOnCommand makes the saga the one handler of commands of type C,
// each starting an instance: begin returns its id and initial state. A
// command whose instance exists already starts nothing.
func StartOnCommand[S, C any](begin func(c C) (id string, s S)) Trigger[S] {
	return Trigger[S]{
		name: cqrs.Name[C](),
		register: func(b *cqrs.Bus, _ string, start func(context.Context, string, S) error, opts []framework.HandlerOption) {
			cqrs.HandleCommand(b, func(ctx context.Context, c C) error {
				id, s := begin(c)
				return start(ctx, id, s)
			}, opts...)
		},
	}
}

// check reports every problem of d at once.
func (d *Definition[S]) check() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("saga %q: "+format, append([]any{d.Name}, args...)...))
	}
	if d.Name == "" {
		bad("empty Name")
	}
	if len(d.Name) > MaxNameLength {
		bad("Name is %d bytes, more than %d", len(d.Name), MaxNameLength)
	}
	if len(d.Stages) == 0 {
		bad("no Stages")
	}
	var zero S
	if _, err := json.Marshal(zero); err != nil {
		bad("state %T cannot be stored as JSON: %v", zero, err)
	}
	names := map[string]bool{}
	commands := map[string]bool{}
	for _, st := range d.Stages {
		for _, s := range stepsOf(st) {
			if s.Command.build != nil {
				commands[s.Command.name] = true
			}
			if s.Compensation.build != nil {
				commands[s.Compensation.name] = true
			}
		}
	}
	for i, st := range d.Stages {
		if st == nil {
			bad("stage %d is nil", i)
			continue
		}
		steps := st.steps()
		if p, ok := st.(Parallel[S]); ok && len(p.Steps) < 2 {
			bad("stage %d: a Parallel group has %d steps, needs at least 2", i, len(p.Steps))
		}
		for _, s := range steps {
			where := fmt.Sprintf("step %q", s.Name)
			if s.Name == "" {
				where = fmt.Sprintf("stage %d: a step", i)
				bad("%s has no Name", where)
			} else if names[s.Name] {
				bad("%s: two steps have this name", where)
			}
			names[s.Name] = true
			if s.Command.build == nil {
				bad("%s has no Command (make one with saga.Send)", where)
			}
			if len(s.Succeeded) == 0 {
				bad("%s has no Succeeded event", where)
			}
			if s.Timeout < 0 || s.CompensationTimeout < 0 {
				bad("%s: negative timeout", where)
			}
			switch {
			case s.Compensation.build != nil && s.NoCompensation:
				bad("%s has a Compensation and says NoCompensation", where)
			case s.Compensation.build == nil && !s.NoCompensation:
				bad("%s has no Compensation: give it one, or set NoCompensation: true", where)
			case s.Compensation.build != nil && len(s.Compensated) == 0:
				bad("%s: Compensation %s has no Compensated event confirming it", where, s.Compensation.name)
			case s.Compensation.build == nil && (len(s.Compensated) > 0 || len(s.CompensationFailed) > 0):
				bad("%s has Compensated or CompensationFailed events but no Compensation", where)
			}
			for _, pair := range [][2]replyField[S]{
				{{"Succeeded", s.Succeeded}, {"Failed", s.Failed}},
				{{"Compensated", s.Compensated}, {"CompensationFailed", s.CompensationFailed}},
			} {
				seen := map[string]string{}
				for _, l := range pair {
					for _, r := range l.rs {
						switch {
						case r.on == nil:
							bad("%s: %s lists an unknown event type (make replies with saga.On)", where, l.field)
						case commands[r.name]:
							bad("%s: %s lists %s, which is one of the saga's commands, not an event", where, l.field, r.name)
						case seen[r.name] != "":
							bad("%s: event type %s is listed in %s and in %s", where, r.name, seen[r.name], l.field)
						default:
							seen[r.name] = l.field
						}
					}
				}
			}
		}
	}
	if d.Start.register != nil && commands[d.Start.name] {
		bad("the start trigger %s is also one of the saga's step commands", d.Start.name)
	}
	return errors.Join(errs...)
}

// replyField is a step's field of replies, for check.
type replyField[S any] struct {
	field string
	rs    []Reply[S]
}

// stepsOf returns st's steps, or none for a nil stage.
func stepsOf[S any](st Stage[S]) []Step[S] {
	if st == nil {
		return nil
	}
	return st.steps()
}
