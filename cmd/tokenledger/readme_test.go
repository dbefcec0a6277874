package main

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The README's configuration table documents every configuration flag of
// every command, with its environment variable. Request flags (token issue
// --name, ...) are parameters documented by the commands' help.
func TestReadmeDocumentsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "| `--") {
			rows = append(rows, line)
		}
	}
	documented := func(name string) bool {
		for _, row := range rows {
			if strings.HasPrefix(row, "| `--"+name+"`") && strings.Contains(row, "`"+envName(name)+"`") {
				return true
			}
		}
		return false
	}
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" || isRequestFlag(f) {
				return
			}
			if !documented(f.Name) {
				t.Errorf("README's configuration table lacks a row for --%s (%s) of %q", f.Name, envName(f.Name), cmd.CommandPath())
			}
		})
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(newRootCommand())
}
