// Package argocd tests the Argo CD health checks shipped in config/argocd:
// it runs their Lua with gopher-lua, the interpreter Argo CD embeds, set up
// the way Argo CD sets it up, on real BaseImage and ImagePolicy objects.
package argocd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
)

// health is what a health script returns: Argo CD's status and message.
type health struct {
	Status  string
	Message string
}

// Argo CD's health status codes; any other status becomes Unknown with the
// message "Lua returned an invalid health status".
var healthCodes = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

// root is the repository's root directory.
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// readScript reads a file of config/argocd.
func readScript(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(), "config", "argocd", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// runHealth runs a health script on an API object as Argo CD does for a
// resource customization in argocd-cm: a state with only the package, base
// and table libraries open (Argo CD adds a reduced os library, which these
// scripts do not use), a one-second deadline, the object converted to a
// global table named obj, and a table {status, message} returned.
func runHealth(script string, object any) (health, error) {
	u, err := k8sruntime.DefaultUnstructuredConverter.ToUnstructured(object)
	if err != nil {
		return health{}, err
	}
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			return health{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, u))
	if err := l.DoString(script); err != nil {
		return health{}, err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return health{}, fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	status, ok := ret.RawGetString("status").(lua.LString)
	if !ok || !healthCodes[string(status)] {
		return health{}, fmt.Errorf("the script returned status %v, not a health status code", ret.RawGetString("status"))
	}
	h := health{Status: string(status)}
	switch m := ret.RawGetString("message").(type) {
	case lua.LString:
		h.Message = string(m)
	case *lua.LNilType:
	default:
		return health{}, fmt.Errorf("the script returned message %v, not a string", m)
	}
	return h, nil
}

// toLua converts an unstructured value as Argo CD does: maps become tables
// with string keys, slices become arrays (indexed from 1), numbers become
// Lua numbers, and null becomes nil.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for k, e := range v {
			t.RawSetString(k, toLua(l, e))
		}
		return t
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, e := range v {
			t.Append(toLua(l, e))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	default:
		return lua.LNil
	}
}
