package memory

import (
	"slices"
	"sync"
)

// topic holds what the broker knows of one topic: the retained history for
// groups that do not exist yet, and the groups that do. Its mutex guards the
// topic and all its groups; every critical section is a few map and slice
// operations.
type topic struct {
	name string
	cfg  *Config

	mu     sync.Mutex
	seq    uint64
	hist   history
	named  map[string]*group
	groups []*group // named and anonymous, for fan-out
	closed bool
}

func newTopic(name string, cfg *Config) *topic {
	return &topic{
		name:  name,
		cfg:   cfg,
		hist:  history{limit: cfg.Retention},
		named: make(map[string]*group),
	}
}

// publish numbers r, retains it and makes it pending in every group.
func (t *topic) publish(r *record) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errClosed
	}
	t.add(r)
	return nil
}

// publishAll publishes rs with consecutive sequence numbers.
func (t *topic) publishAll(rs []*record) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errClosed
	}
	for _, r := range rs {
		t.add(r)
	}
	return nil
}

func (t *topic) add(r *record) {
	t.seq++
	r.seq = t.seq
	t.hist.add(r)
	for _, g := range t.groups {
		g.add(r)
	}
}

// join adds a member to group name, creating the group (seeded with the
// retained history) if it does not exist. Name "" always creates a new
// anonymous group; fresh leaves such a group without the history, so that
// it gets only what is published from now on.
func (t *topic) join(name string, fresh bool) (*group, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errClosed
	}
	var g *group
	if name == "" && fresh {
		g = newGroup(t, "", true, false)
		t.groups = append(t.groups, g)
	} else {
		g = t.group(name)
	}
	g.members++
	return g, nil
}

// ensure creates group name (seeded with the retained history) if it does
// not exist, without a member: it keeps what is published from now on.
func (t *topic) ensure(name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errClosed
	}
	t.group(name)
	return nil
}

// group returns group name, creating it (seeded with the retained history)
// if it does not exist. Name "" always creates a new anonymous group. The
// caller holds t.mu.
func (t *topic) group(name string) *group {
	g := t.named[name]
	if g == nil {
		g = newGroup(t, name, name == "", true)
		t.groups = append(t.groups, g)
		if !g.anonymous {
			t.named[name] = g
		}
	}
	return g
}

// leave removes a member from g. An anonymous group ends with its only
// member; a named group stays and keeps collecting messages.
func (t *topic) leave(g *group) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g.members--
	if g.anonymous && !g.gone {
		if i := slices.Index(t.groups, g); i >= 0 {
			t.groups = slices.Delete(t.groups, i, i+1)
		}
		g.drop()
	}
}

// close drops every group and the history.
func (t *topic) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for _, g := range t.groups {
		g.drop()
	}
	t.groups = nil
	t.named = nil
	t.hist = history{}
}
