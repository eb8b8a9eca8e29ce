package amqp

import (
	"errors"
	"regexp"
	"strconv"

	"github.com/ThreeDotsLabs/watermill"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// A queue that exists with another classic queue version than
// queue.version (declared by an earlier millrace, by another client, or
// with the broker's default) is used as it is, rather than failing every
// subscription until it is deleted with its messages: the version changes
// how the broker stores messages, not what a consumer sees. The transport
// remembers the version each such queue has and declares it with that one.

// currentVersion matches the end of RabbitMQ's reason for refusing a
// declaration with another x-queue-version: "... but current is none" or
// "... but current is '1'" or "... but current is the value '1' of type
// 'signedint'".
var currentVersion = regexp.MustCompile(`inequivalent arg 'x-queue-version'.*but current is (?:none|(?:the value )?'(\d+)')`)

// existingVersion reports the version of the queue a declaration failed on
// because it exists with another x-queue-version (0: none set).
func existingVersion(err error) (version int, ok bool) {
	var aerr *amqp091.Error
	if !errors.As(err, &aerr) || aerr.Code != amqp091.PreconditionFailed {
		return 0, false
	}
	m := currentVersion.FindStringSubmatch(aerr.Reason)
	if m == nil {
		return 0, false
	}
	if m[1] == "" {
		return 0, true
	}
	v, err := strconv.Atoi(m[1])
	return v, err == nil
}

// adoptVersion makes later declarations of queue use version, the one it
// exists with, and says so in the log.
func (t *Transport) adoptVersion(queue string, version int) {
	t.versions.Store(queue, version)
	shown := strconv.Itoa(version)
	if version == 0 {
		shown = "none (the broker's default)"
	}
	t.logger.Info("AMQP queue exists with another classic queue version than transport.amqp.queue.version; using it as it is (delete the queue to change it)",
		watermill.LogFields{"amqp_queue": queue, "existing_version": shown, "configured_version": t.cfg.Queue.Version})
}

// queueArguments returns the arguments to declare queue with: the
// configured ones, with the version queue was found to have, if any.
func (t *Transport) queueArguments(queue string) amqp091.Table {
	args := t.cfg.Queue.arguments()
	v, ok := t.versions.Load(queue)
	if !ok {
		return args
	}
	adopted := amqp091.Table{}
	for k, val := range args {
		adopted[k] = val
	}
	delete(adopted, "x-queue-version")
	if v.(int) > 0 {
		adopted["x-queue-version"] = int32(v.(int))
	}
	if len(adopted) == 0 {
		return nil
	}
	return adopted
}
