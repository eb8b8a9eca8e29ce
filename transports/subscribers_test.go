package transports_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/millrace/millrace/transports"
)

// fakeSub records its closing in closed; it returns err from Close.
type fakeSub struct {
	name   string
	err    error
	closes int
	closed *[]string
	mu     *sync.Mutex
	wait   func() // called by Close, if set
}

func (s *fakeSub) Close() error {
	if s.wait != nil {
		s.wait()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closes++
	*s.closed = append(*s.closed, s.name)
	return s.err
}

func open(s *fakeSub) func() (*fakeSub, error) {
	return func() (*fakeSub, error) { return s, nil }
}

func TestSubscribers_CloseAllClosesEachOnceInOrderAndJoinsErrors(t *testing.T) {
	var (
		mu     sync.Mutex
		closed []string
		set    transports.Subscribers[*fakeSub]
	)
	errB := errors.New("b failed")
	subs := []*fakeSub{
		{name: "a", closed: &closed, mu: &mu},
		{name: "b", err: errB, closed: &closed, mu: &mu},
		{name: "c", closed: &closed, mu: &mu},
	}
	for _, s := range subs {
		if got, err := set.Add(open(s)); got != s || err != nil {
			t.Fatalf("Add = %v, %v", got, err)
		}
	}
	if set.Closed() {
		t.Fatal("Closed before CloseAll")
	}
	first, err := set.CloseAll()
	if !first || !errors.Is(err, errB) {
		t.Fatalf("CloseAll = %v, %v; want true and b's error", first, err)
	}
	if !slices.Equal(closed, []string{"a", "b", "c"}) {
		t.Errorf("closed %v, want a, b, c in order", closed)
	}
	if first, err := set.CloseAll(); first || err != nil {
		t.Errorf("second CloseAll = %v, %v; want false, nil", first, err)
	}
	for _, s := range subs {
		if s.closes != 1 {
			t.Errorf("%s closed %d times", s.name, s.closes)
		}
	}
	if !set.Closed() {
		t.Error("not Closed after CloseAll")
	}
}

func TestSubscribers_AddAfterCloseAllFailsWithoutOpening(t *testing.T) {
	errClosed := fmt.Errorf("fake: %w", transports.ErrClosed)
	tests := []struct {
		name string
		set  *transports.Subscribers[*fakeSub]
		want error
	}{
		{"own error", &transports.Subscribers[*fakeSub]{ErrClosed: errClosed}, errClosed},
		{"default error", &transports.Subscribers[*fakeSub]{}, transports.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _ = tt.set.CloseAll()
			opened := false
			sub, err := tt.set.Add(func() (*fakeSub, error) { opened = true; return &fakeSub{}, nil })
			if err != tt.want || !errors.Is(err, transports.ErrClosed) || sub != nil || opened {
				t.Fatalf("Add after CloseAll = %v, %v (opened %v); want %v without opening", sub, err, opened, tt.want)
			}
		})
	}
}

func TestSubscribers_FailedOpenIsNotRemembered(t *testing.T) {
	var set transports.Subscribers[*fakeSub]
	boom := errors.New("boom")
	if sub, err := set.Add(func() (*fakeSub, error) { return &fakeSub{}, boom }); sub != nil || err != boom {
		t.Fatalf("Add = %v, %v; want nil, boom", sub, err)
	}
	if _, err := set.CloseAll(); err != nil {
		t.Fatalf("CloseAll closed the failed subscriber: %v", err)
	}
}

func TestSubscribers_RemovedSubscriberIsNotClosedAgain(t *testing.T) {
	var (
		mu     sync.Mutex
		closed []string
		set    transports.Subscribers[*fakeSub]
	)
	a := &fakeSub{name: "a", closed: &closed, mu: &mu}
	b := &fakeSub{name: "b", closed: &closed, mu: &mu}
	_, _ = set.Add(open(a))
	_, _ = set.Add(open(b))
	set.Remove(a)
	set.Remove(&fakeSub{}) // not in the set
	_, _ = set.CloseAll()
	if !slices.Equal(closed, []string{"b"}) {
		t.Errorf("closed %v, want only b", closed)
	}
}

// With Concurrent, a subscriber whose Close waits for another one's Close
// to start does not hold up CloseAll.
func TestSubscribers_ConcurrentClosesAllAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu     sync.Mutex
			closed []string
			set    = transports.Subscribers[*fakeSub]{Concurrent: true}
		)
		bStarted := make(chan struct{})
		a := &fakeSub{name: "a", closed: &closed, mu: &mu, wait: func() { <-bStarted }}
		b := &fakeSub{name: "b", closed: &closed, mu: &mu, wait: func() { close(bStarted) }}
		_, _ = set.Add(open(a))
		_, _ = set.Add(open(b))
		if first, err := set.CloseAll(); !first || err != nil {
			t.Fatalf("CloseAll = %v, %v", first, err)
		}
		if len(closed) != 2 {
			t.Errorf("closed %v, want a and b", closed)
		}
	})
}

// A subscriber whose Add was under way when CloseAll started is closed
// too.
func TestSubscribers_CloseAllDuringAddClosesTheNewSubscriber(t *testing.T) {
	var (
		mu     sync.Mutex
		closed []string
		set    transports.Subscribers[*fakeSub]
	)
	opening, release := make(chan struct{}), make(chan struct{})
	added := make(chan error)
	go func() {
		_, err := set.Add(func() (*fakeSub, error) {
			close(opening)
			<-release
			return &fakeSub{name: "late", closed: &closed, mu: &mu}, nil
		})
		added <- err
	}()
	<-opening
	done := make(chan struct{})
	go func() {
		_, _ = set.CloseAll()
		close(done)
	}()
	close(release)
	if err := <-added; err != nil {
		t.Fatalf("Add: %v", err)
	}
	<-done
	if !slices.Equal(closed, []string{"late"}) {
		t.Errorf("closed %v, want the subscriber added meanwhile", closed)
	}
}
