// Package storetest is the contract suite for eventstore.Store and
// eventstore.SnapshotStore implementations, and the property test of the
// global order. Every store millrace ships (eventstore.Memory, package
// sql's Store on PostgreSQL and MySQL) runs all three, and a store written
// outside millrace should too:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, u *eventstore.Upcasters) eventstore.Store {
//			return mystore.New(connect(t), mystore.UpcastWith(u)) // empty, for this case alone
//		})
//		storetest.RunSnapshots(t, func(t *testing.T) eventstore.SnapshotStore {
//			return mystore.New(connect(t))
//		})
//		storetest.RunFollow(t, storetest.SQL(mystore.New(db), db))
//	}
//
// [Run] and [RunSnapshots] ask for a fresh store per case. [RunFollow] uses
// one store for all its checks (pgregory.net/rapid: -rapid.checks, 100 by
// default, sets how many), each with 32 concurrent writers and a follower.
//
// Stores are tested against real servers: a committed event may become
// readable through ReadAll some time after its commit (on PostgreSQL, once
// every older transaction of the server has ended), so the cases that read
// all wait for what they expect, up to a minute.
package storetest
