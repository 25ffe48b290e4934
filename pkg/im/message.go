// Package im connects the bot to IM platforms (DingTalk, Feishu, QQ through
// OneBot v11, Telegram) through one pipeline.
//
// A webhook request is verified by its platform's Adapter (pkg/im/<name>)
// and parsed into a Message; the Pipeline maps it to a conversation's
// memory scope, drops group messages that do not mention the bot, dedups
// the event fleet-wide, classifies its priority and queues it (pkg/queue)
// — then answers the platform within milliseconds. Queue workers on any
// instance run the chat turn with the event id as its request id and send
// the reply through the Adapter, at most once per event (see Pipeline.Handle).
package im

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/botfleet/botfleet/pkg/fault"

	"github.com/botfleet/botfleet/pkg/queue"
)

// The platforms, by their route name (/webhook/<name>).
const (
	DingTalk = "dingtalk"
	Feishu   = "feishu"
	OneBot   = "onebot"
	Telegram = "telegram"
)

// Platforms are every platform the bot knows.
var Platforms = []string{DingTalk, Feishu, OneBot, Telegram}

// Chat types.
const (
	Private = "private"
	Group   = "group"
)

// Message is one platform event in the unified form (seed 002): who said
// what where, plus what the reply needs.
type Message struct {
	// Platform is one of Platforms.
	Platform string `json:"platform"`
	// EventID is the platform's unique id of the event (DingTalk msgId,
	// Feishu header.event_id, OneBot self_id:message_id, Telegram
	// update_id); the fleet dedups on it and the chat turn uses it as its
	// request id.
	EventID string `json:"event_id"`
	// SenderID and SenderName are the author.
	SenderID   string `json:"sender_id"`
	SenderName string `json:"sender_name,omitempty"`
	// ChatType is Private or Group; ChatID is the platform's id of the chat
	// (the group, or the private chat).
	ChatType string `json:"chat_type"`
	ChatID   string `json:"chat_id"`
	// Text is the message's text, the bot's mention stripped.
	Text string `json:"text"`
	// MediaURLs are the message's images and files: URLs where the platform
	// gives them, else "<platform>-file:<key>".
	MediaURLs []string `json:"media_urls,omitempty"`
	// Attachments are the media downloaded by the worker (not queued).
	Attachments []Attachment `json:"-"`
	// Mentions are the ids of the users the message mentions.
	Mentions []string `json:"mentions,omitempty"`
	// Mentioned is true when the message mentions the bot.
	Mentioned bool `json:"mentioned"`
	// Timestamp is when the message was sent, Unix milliseconds.
	Timestamp int64 `json:"timestamp"`
	// Reply holds what the adapter needs to answer: message and chat ids,
	// DingTalk's sessionWebhook and its expiry, and so on.
	Reply map[string]string `json:"reply,omitempty"`

	// Scope is the memory scope the pipeline chose: chat.ScopeMember, or
	// the group scope option in groups.
	Scope string `json:"scope"`
	// Conversation is the memory key of that scope (chat.Service.Resolve),
	// for logs.
	Conversation string `json:"conversation"`
	// Priority is the queue channel the pipeline chose.
	Priority queue.Priority `json:"priority"`
}

// Key is the event's fleet-wide unique key.
func (m *Message) Key() string { return m.Platform + ":" + m.EventID }

// IsGroup reports whether the message came from a group chat.
func (m *Message) IsGroup() bool { return m.ChatType == Group }

// Response is what a webhook answers the platform.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
}

// JSON is a 200 response with a JSON body.
func JSON(body string) Response {
	return Response{Status: http.StatusOK, ContentType: "application/json", Body: []byte(body)}
}

// NoContent is a 204 response.
func NoContent() Response { return Response{Status: http.StatusNoContent} }

// Inbound is a verified webhook request.
type Inbound struct {
	// Message is the event to answer; nil for events that need no answer
	// (Feishu's url_verification, other event types, the bot's own messages).
	Message *Message
	// Response is what the webhook answers, in every case.
	Response Response
}

// Adapter is one platform: it verifies and parses webhooks, and sends
// replies.
type Adapter interface {
	// Platform is the adapter's name, one of Platforms.
	Platform() string
	// Parse verifies a webhook request exactly as the platform signs it and
	// parses it. Its errors are *Error (401, 403, 400).
	Parse(ctx context.Context, header http.Header, body []byte) (*Inbound, error)
	// Send answers m with text. An error marked Permanent is not retried.
	Send(ctx context.Context, m *Message, text string) error
}

// Error is a refused webhook request, answered as JSON
// {"error": {"code", "message"}} with Status.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Fault classifies the refusal: its status, not to be retried.
func (e *Error) Fault() fault.Error {
	return fault.Error{Status: e.Status, Code: e.Code, Message: e.Message}
}

// Unauthorized is a 401: the signature or token does not check out.
func Unauthorized(format string, args ...any) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "invalid_signature", Message: fmt.Sprintf(format, args...)}
}

// Forbidden is a 403: the request is signed but not acceptable (a stale
// timestamp, a reply URL outside the allowed hosts).
func Forbidden(format string, args ...any) *Error {
	return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: fmt.Sprintf(format, args...)}
}

// BadRequest is a 400: the body is not the platform's format.
func BadRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_event", Message: fmt.Sprintf(format, args...)}
}

// Permanent marks a send error that no retry can fix (an expired session
// webhook, a chat the bot left); the job goes to the dead-letter stream.
func Permanent(err error) error { return queue.Permanent(err) }

// StatusError is a platform API's error answer.
type StatusError struct {
	Platform string
	Status   int
	Code     string
	Message  string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s API answered %d (code %s): %s", e.Platform, e.Status, e.Code, e.Message)
}

// ClassifyStatus marks an API error answer as permanent unless a retry may
// help (429, 5xx, 401 for a token that may be refreshed).
func ClassifyStatus(err *StatusError) error {
	switch {
	case err.Status == http.StatusTooManyRequests, err.Status >= 500, err.Status == http.StatusUnauthorized:
		return err
	case err.Status >= 400:
		return Permanent(err)
	}
	return err
}

// ErrSendInProgress means another worker holds the send of this reply; the
// job is retried.
var ErrSendInProgress = fault.New(http.StatusServiceUnavailable, "send_in_progress",
	"the reply is being sent by another worker", fault.Retry(time.Second))

// ErrUnavailable wraps the pipeline's own failures to reach Redis (the
// send marks); the job is retried.
var ErrUnavailable = fault.New(http.StatusServiceUnavailable, "store_unavailable",
	"the IM pipeline's store (Redis) is unavailable", fault.Retry(time.Second))
