package saga

// Ended is published when a saga instance ends: [Completed],
// [Compensated] or [Failed]. It is keyed by the instance id, and sent with
// the instance's last transition (through the outbox on SQL stores), so an
// instance that ended has always announced it.
type Ended struct {
	// Saga and ID name the instance.
	Saga string `json:"saga"`
	ID   string `json:"id"`
	// Status is how it ended.
	Status Status `json:"status"`
	// Reason is why it compensated or failed; empty when it completed.
	Reason string `json:"reason,omitempty"`
}

// MessageType names the event "saga.Ended".
func (Ended) MessageType() string { return "saga.Ended" }

// EntityID keys the event by the instance id.
func (e Ended) EntityID() string { return e.ID }

// AttentionNeeded is published when a compensation failed or timed out:
// the instance is [NeedsAttention] until an operator fixes the cause and
// resumes it ([Manager.Resume], or `saga resume`). The compensating command
// is in the service's poison queue too, with Reason as its poison_reason.
type AttentionNeeded struct {
	// Saga and ID name the instance.
	Saga string `json:"saga"`
	ID   string `json:"id"`
	// Step is the step whose compensation failed.
	Step string `json:"step"`
	// Reason says how it failed.
	Reason string `json:"reason"`
}

// MessageType names the event "saga.AttentionNeeded".
func (AttentionNeeded) MessageType() string { return "saga.AttentionNeeded" }

// EntityID keys the event by the instance id.
func (e AttentionNeeded) EntityID() string { return e.ID }
