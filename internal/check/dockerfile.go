package check

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// Stage is one FROM of a Dockerfile.
type Stage struct {
	// Number counts the stages from 1.
	Number int
	// Name is the stage's AS name; empty when it has none.
	Name string
	// Image is the base image, with build arguments substituted; empty
	// when the stage builds FROM scratch or FROM an earlier stage.
	Image string
	// From is the FROM argument as written.
	From string
	// Line is the line of the FROM instruction.
	Line int
}

var argRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-+][^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// ParseDockerfile lists the stages of a Dockerfile: every FROM, with the
// defaults of the ARG instructions before the first FROM (overridden by
// args, as docker build --build-arg does) substituted. A stage FROM an
// earlier stage or FROM scratch has no Image. A reference that keeps an
// unset variable is an error.
func ParseDockerfile(r io.Reader, args map[string]string) ([]Stage, error) {
	vars := map[string]string{}
	var stages []Stage
	names := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line, start := 0, 0
	var cur strings.Builder
	flush := func() error {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" || strings.HasPrefix(text, "#") {
			return nil
		}
		fields := strings.Fields(text)
		switch strings.ToUpper(fields[0]) {
		case "ARG":
			if len(stages) > 0 {
				return nil
			}
			for _, f := range fields[1:] {
				k, v, _ := strings.Cut(f, "=")
				v = strings.Trim(v, `"'`)
				if a, ok := args[k]; ok {
					v = a
				}
				vars[k] = v
			}
		case "FROM":
			st := Stage{Number: len(stages) + 1, Line: start}
			rest := fields[1:]
			for len(rest) > 0 && strings.HasPrefix(rest[0], "--") {
				rest = rest[1:]
			}
			if len(rest) == 0 {
				return fmt.Errorf("line %d: FROM without an image", start)
			}
			st.From = rest[0]
			if len(rest) >= 3 && strings.EqualFold(rest[1], "AS") {
				st.Name = strings.ToLower(rest[2])
			}
			image, err := substitute(rest[0], vars)
			if err != nil {
				return fmt.Errorf("line %d: %w", start, err)
			}
			if !strings.EqualFold(image, "scratch") && !names[strings.ToLower(image)] {
				st.Image = image
			}
			if st.Name != "" {
				names[st.Name] = true
			}
			stages = append(stages, st)
		}
		return nil
	}
	for sc.Scan() {
		line++
		text := sc.Text()
		trimmed := strings.TrimSpace(text)
		if cur.Len() == 0 {
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			start = line
		} else if strings.HasPrefix(trimmed, "#") {
			// A comment inside a continued instruction.
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`))
			cur.WriteString(" ")
			continue
		}
		cur.WriteString(text)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("no FROM instruction")
	}
	return stages, nil
}

// substitute replaces $NAME and ${NAME} (with the :- and :+ forms) in s.
func substitute(s string, vars map[string]string) (string, error) {
	var missing string
	out := argRef.ReplaceAllStringFunc(s, func(m string) string {
		sub := argRef.FindStringSubmatch(m)
		k, mod := sub[1], sub[2]
		if k == "" {
			k = sub[3]
		}
		v, ok := vars[k]
		switch {
		case strings.HasPrefix(mod, ":-") || strings.HasPrefix(mod, "-"):
			if v == "" {
				return strings.TrimLeft(mod, ":-")
			}
			return v
		case strings.HasPrefix(mod, ":+") || strings.HasPrefix(mod, "+"):
			if v != "" {
				return strings.TrimLeft(mod, ":+")
			}
			return ""
		}
		if !ok || v == "" {
			missing = k
		}
		return v
	})
	if missing != "" {
		return "", fmt.Errorf("%s uses the build argument %s, which has no value (give it with --build-arg %s=...)", s, missing, missing)
	}
	if strings.Contains(out, "${") {
		return "", fmt.Errorf("%s has an unterminated ${", s)
	}
	return out, nil
}

// readDockerfile opens a Dockerfile; "-" is standard input.
func readDockerfile(path string, stdin io.Reader, args map[string]string) ([]Stage, error) {
	if path == "-" {
		return ParseDockerfile(stdin, args)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	stages, err := ParseDockerfile(f, args)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return stages, nil
}
