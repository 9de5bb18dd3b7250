package config

import (
	"slices"
	"strings"
)

// Edit returns data with the variables in set given new values and the
// variables in del removed, keeping every other line (comments, blank lines,
// unknown variables) byte for byte.
//
// A variable in set is rewritten on its first line, keeping that line's
// trailing comment; its later duplicates are removed, because the last
// occurrence would win. Variables not present are appended at the end, in
// name order. Values containing blanks, commas, '#', '"' or '\' (or empty
// values) are written in double quotes with '"' and '\' escaped. A value
// cannot span lines: CR and LF are replaced by spaces. A name in both set and
// del is set.
func Edit(data []byte, set map[string]string, del []string) []byte {
	nl := "\n"
	if strings.Contains(string(data), "\r\n") {
		nl = "\r\n"
	}
	done := make(map[string]bool, len(set))
	var out strings.Builder
	rest := string(data)
	for rest != "" {
		line, after, found := strings.Cut(rest, "\n")
		rest = after
		end := ""
		if found {
			end = "\n"
		}
		if strings.HasSuffix(line, "\r") {
			line = strings.TrimSuffix(line, "\r")
			end = "\r" + end
		}
		l, ok := lex(line)
		if !ok || l.err != "" {
			out.WriteString(line + end)
			continue
		}
		if v, ok := set[l.name]; ok {
			if done[l.name] {
				continue
			}
			done[l.name] = true
			out.WriteString(formatLine(l.name, v))
			if l.comment != "" {
				out.WriteString(" " + l.comment)
			}
			if end == "" {
				end = nl
			}
			out.WriteString(end)
			continue
		}
		if slices.Contains(del, l.name) {
			continue
		}
		out.WriteString(line + end)
	}
	var missing []string
	for k := range set {
		if !done[k] {
			missing = append(missing, k)
		}
	}
	slices.Sort(missing)
	s := out.String()
	if len(missing) > 0 && s != "" && !strings.HasSuffix(s, "\n") {
		out.WriteString(nl)
	}
	for _, k := range missing {
		out.WriteString(formatLine(k, set[k]) + nl)
	}
	return []byte(out.String())
}

// formatLine writes `name = value`, quoting the value when Parse would
// otherwise read it differently.
func formatLine(name, value string) string {
	value = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(value)
	if value == "" || strings.ContainsAny(value, " \t,#\"\\") {
		value = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(value) + `"`
	}
	return name + " = " + value
}
