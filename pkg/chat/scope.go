package chat

import (
	"errors"
	"fmt"
)

// Scopes of conversation memory, as in Kirara AI's memory.
const (
	// ScopeMember keeps one memory per user: per group member in a group,
	// per user in private chat.
	ScopeMember = "member"
	// ScopeGroup shares one memory among a whole group.
	ScopeGroup = "group"
	// ScopeGlobal shares one memory among everybody.
	ScopeGlobal = "global"
)

// ErrInvalid marks a request that cannot be served as sent.
var ErrInvalid = errors.New("chat: invalid request")

// Conversation returns the memory key of a conversation: an explicit
// session id wins (session:{id}); otherwise scope decides — member gives
// member:{group}:{user} in a group and c2c:{user} in private, group gives
// group:{group}, global gives global.
func Conversation(scope, sessionID, userID, groupID string) (string, error) {
	if sessionID != "" {
		return "session:" + sessionID, nil
	}
	switch scope {
	case ScopeMember:
		switch {
		case userID == "":
			return "", fmt.Errorf("%w: scope member needs user_id (or give a session_id)", ErrInvalid)
		case groupID != "":
			return "member:" + groupID + ":" + userID, nil
		default:
			return "c2c:" + userID, nil
		}
	case ScopeGroup:
		if groupID == "" {
			return "", fmt.Errorf("%w: scope group needs group_id", ErrInvalid)
		}
		return "group:" + groupID, nil
	case ScopeGlobal:
		return "global", nil
	}
	return "", fmt.Errorf("%w: scope must be member, group or global, got %q", ErrInvalid, scope)
}
