package eventstore_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/millrace/millrace/cqrs/eventstore"
	"github.com/millrace/millrace/cqrs/eventstore/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestMemory_Contract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, u *eventstore.Upcasters) eventstore.Store {
		return eventstore.NewMemory(eventstore.UpcastWith(u))
	})
}

func TestMemory_Snapshots(t *testing.T) {
	storetest.RunSnapshots(t, func(t *testing.T) eventstore.SnapshotStore {
		return eventstore.NewMemory()
	})
}

func TestMemory_FollowerSeesEveryCommittedEventOnceInOrder(t *testing.T) {
	storetest.RunFollow(t, storetest.Buffered(eventstore.NewMemory()))
}
