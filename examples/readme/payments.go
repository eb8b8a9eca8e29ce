package readme

import (
	"context"
	"database/sql"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/outbox"
)

type ChargeCard struct {
	OrderID string `json:"order_id"`
	Cents   int    `json:"cents"`
}
type CardCharged struct {
	OrderID string `json:"order_id"`
}

// RegisterPayments charges each card once, whatever the broker redelivers:
// the payment row, the command's "handled" mark and the CardCharged event
// commit in one transaction, or none of them does.
func RegisterPayments(bus *cqrs.Bus, ob *outbox.Outbox) {
	cqrs.HandleCommand(bus, func(ctx context.Context, c ChargeCard) error {
		return ob.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO payments (order_id, cents) VALUES ($1, $2)`, c.OrderID, c.Cents); err != nil {
				return err
			}
			return outbox.Publish(ctx, tx, ob, CardCharged{OrderID: c.OrderID}) // sent once the transaction commits
		})
	})
}

func NewOutbox(ctx context.Context, bus *cqrs.Bus, db *sql.DB) (*outbox.Outbox, error) {
	return outbox.New(ctx, bus, db, outbox.DefaultConfig(outbox.Postgres)) // the relay runs in the App
}
