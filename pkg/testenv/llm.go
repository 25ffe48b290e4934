package testenv

import (
	"testing"

	"github.com/botfleet/botfleet/pkg/llm"
)

// BuiltinRouter is the builtin model behind a router, as model "builtin":
// what an instance with llm.provider builtin answers with.
func BuiltinRouter(t testing.TB) *llm.Router {
	t.Helper()
	builtin, err := llm.NewBuiltin(llm.BuiltinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	router, err := llm.NewRouter(llm.RouterOptions{Models: []llm.ModelOptions{{Name: "builtin", Endpoints: []llm.EndpointOptions{{Backend: builtin}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return router
}
