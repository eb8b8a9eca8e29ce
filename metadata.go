package millrace

// The message envelope: Watermill metadata keys that every message published
// through millrace carries. Transports map them onto broker headers (Kafka
// record headers, AMQP headers, an SQL metadata column), so services written
// in other languages can read and set them by these exact names.
const (
	// MetadataType is the message's type name (for example "OrderPlaced"),
	// used to decode the payload and to skip messages of other types that
	// share a topic.
	MetadataType = "message_type"

	// MetadataCorrelationID ties together every message of one business
	// flow. A message published while another is handled inherits the
	// handled message's correlation id; a message published from outside a
	// handler starts a new flow with its own id. The value equals Watermill's
	// middleware.CorrelationIDMetadataKey, so Watermill's CorrelationID
	// middleware and millrace agree.
	MetadataCorrelationID = "correlation_id"

	// MetadataCausationID is the id of the message whose handling caused this
	// one to be published. It is empty for messages published from outside
	// a handler.
	MetadataCausationID = "causation_id"

	// MetadataPublishedBy is the name of the service that published the
	// message (config key service.name).
	MetadataPublishedBy = "published_by"

	// MetadataPublishedAt is when the message was published, in RFC 3339
	// format with nanoseconds, UTC.
	MetadataPublishedAt = "published_at"

	// MetadataPartitionKey is the key that orders messages: transports that
	// promise order deliver messages with the same key to one consumer of a
	// group at a time, in publish order (Kafka: the record key). Messages
	// without a key carry no ordering promise.
	MetadataPartitionKey = "partition_key"

	// MetadataContentType is the media type of the payload ("application/json"
	// for millrace's default codec).
	MetadataContentType = "content_type"
)

// Metadata the reliability middleware adds. The poison queue stamps the
// poison_* keys on a message it sets aside; delayed retries carry the
// attempt count in retry_attempts; a replay from the poison queue counts in
// replay_count.
const (
	// MetadataPoisonReason is the error text of the last failure.
	MetadataPoisonReason = "poison_reason"
	// MetadataPoisonHandler is the handler that failed.
	MetadataPoisonHandler = "poison_handler"
	// MetadataPoisonTopic is the topic the message was consumed from: where
	// a replay sends it back to.
	MetadataPoisonTopic = "poison_topic"
	// MetadataPoisonGroup is the consumer group of the failed handler.
	MetadataPoisonGroup = "poison_group"
	// MetadataPoisonService is the service whose handler failed.
	MetadataPoisonService = "poison_service"
	// MetadataPoisonAttempts is how many times the message was tried.
	MetadataPoisonAttempts = "poison_attempts"
	// MetadataPoisonFirstFailedAt and MetadataPoisonLastFailedAt bound the
	// failures in time (RFC 3339, UTC).
	MetadataPoisonFirstFailedAt = "poison_first_failed_at"
	MetadataPoisonLastFailedAt  = "poison_last_failed_at"

	// MetadataRetryAttempts is how many attempts were made before the message
	// was scheduled for a delayed retry (carried across redeliveries).
	MetadataRetryAttempts = "retry_attempts"
	// MetadataRetryRounds is how many delayed retries the message has had.
	MetadataRetryRounds = "retry_rounds"
	// MetadataFirstFailedAt is when the message first failed (RFC 3339, UTC).
	MetadataFirstFailedAt = "first_failed_at"
	// MetadataReplayCount is how many times the message was replayed from
	// the poison queue.
	MetadataReplayCount = "replay_count"
)

// Metadata of the programming model (package cqrs). A request carries
// reply_to and reply_instance; its reply carries the request's id as
// causation_id, reply_instance back, and reply_error when the handler
// failed. Services in other languages answer a request by publishing to its
// reply_to topic with those three.
const (
	// MetadataEntityID is the id of the entity (aggregate, order) a message
	// is about; it is also the message's partition key.
	MetadataEntityID = "entity_id"
	// MetadataReplyTo is the topic a request's reply is to be published to.
	MetadataReplyTo = "reply_to"
	// MetadataReplyInstance names the service instance that sent a request:
	// its reply goes back to that instance alone.
	MetadataReplyInstance = "reply_instance"
	// MetadataReplyError is the error text of a handler that failed a
	// request; a reply without it succeeded.
	MetadataReplyError = "reply_error"
)

// Metadata of sagas (package saga). Every message a saga sends carries its
// saga's name and id, and the step it belongs to; a message published while
// such a message is handled inherits all three ([middleware.Correlate]),
// so a participant's reply event finds its saga instance on any transport
// without the participant knowing about sagas.
const (
	// MetadataSagaName is the name of the saga definition ("order").
	MetadataSagaName = "saga_name"
	// MetadataSagaID is the id of the saga instance; it is also the
	// partition key of the saga's messages that have no key of their own.
	MetadataSagaID = "saga_id"
	// MetadataSagaStep is the name of the step a command, or the reply to
	// it, belongs to.
	MetadataSagaStep = "saga_step"
)
