package main

import (
	"flag"
	"strings"

	"github.com/medseq/medseq/data"
)

// durationFlag is a flag holding microseconds, written as 365d, 18y, 2w, 12h.
type durationFlag struct{ us *int64 }

func (d durationFlag) String() string {
	if d.us == nil {
		return ""
	}
	return data.FormatDuration(*d.us)
}

func (d durationFlag) Set(s string) error {
	v, err := data.ParseDuration(s)
	if err != nil {
		return err
	}
	*d.us = v
	return nil
}

func durationVar(fs *flag.FlagSet, p *int64, name string, def int64, usage string) {
	*p = def
	fs.Var(durationFlag{p}, name, usage)
}

// listFlag is a comma-separated list of strings.
type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l listFlag) Set(s string) error {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	*l.v = out
	return nil
}

func listVar(fs *flag.FlagSet, p *[]string, name string, def []string, usage string) {
	*p = def
	fs.Var(listFlag{p}, name, usage)
}

// appendListFlag is a repeatable flag whose values may also be comma-separated: every use
// adds to the list.
type appendListFlag struct{ v *[]string }

func (l appendListFlag) String() string { return listFlag(l).String() }

func (l appendListFlag) Set(s string) error {
	var add []string
	if err := (listFlag{&add}).Set(s); err != nil {
		return err
	}
	*l.v = append(*l.v, add...)
	return nil
}

func appendListVar(fs *flag.FlagSet, p *[]string, name string, usage string) {
	fs.Var(appendListFlag{p}, name, usage)
}

// required returns a usage error naming the first empty flag.
func required(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return usagef("flag --%s is required", pairs[i])
		}
	}
	return nil
}
