// Package dag is a small directed graph of string-named nodes with deterministic topological
// ordering and cycle reporting. It knows nothing about pipelines.
package dag

import (
	"fmt"
	"sort"
	"strings"
)

// Graph is a directed graph. An edge from a to b means "a depends on b": b comes first in
// topological order. Node and edge order never leaks into results: everything is sorted.
type Graph struct {
	nodes map[string]bool
	deps  map[string]map[string]bool // node → what it depends on
}

// New returns an empty graph.
func New() *Graph {
	return &Graph{nodes: map[string]bool{}, deps: map[string]map[string]bool{}}
}

// Add adds a node (no-op when present).
func (g *Graph) Add(n string) {
	if !g.nodes[n] {
		g.nodes[n] = true
		g.deps[n] = map[string]bool{}
	}
}

// Connect records that a depends on b, adding both nodes when missing.
func (g *Graph) Connect(a, b string) {
	g.Add(a)
	g.Add(b)
	g.deps[a][b] = true
}

// Has reports whether n is a node.
func (g *Graph) Has(n string) bool { return g.nodes[n] }

// Nodes returns every node, sorted.
func (g *Graph) Nodes() []string { return sortedKeys(g.nodes) }

// DependsOn returns the direct dependencies of n, sorted.
func (g *Graph) DependsOn(n string) []string { return sortedKeys(g.deps[n]) }

// Dependents returns the nodes that directly depend on n, sorted.
func (g *Graph) Dependents(n string) []string {
	var out []string
	for m, ds := range g.deps {
		if ds[n] {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out
}

// Ancestors returns n's transitive dependencies (not n itself), sorted.
func (g *Graph) Ancestors(n string) []string {
	return g.reach(n, g.DependsOn)
}

// Descendants returns every node that transitively depends on n (not n itself), sorted.
func (g *Graph) Descendants(n string) []string {
	return g.reach(n, g.Dependents)
}

func (g *Graph) reach(n string, next func(string) []string) []string {
	seen := map[string]bool{}
	stack := []string{n}
	for len(stack) > 0 {
		cur := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, m := range next(cur) {
			if !seen[m] && m != n {
				seen[m] = true
				stack = append(stack, m)
			}
		}
	}
	return sortedKeys(seen)
}

// CycleError lists every elementary cycle of a graph that has any, each starting at its
// smallest node, in sorted order.
type CycleError struct {
	Cycles [][]string
}

func (e *CycleError) Error() string {
	parts := make([]string, len(e.Cycles))
	for i, c := range e.Cycles {
		parts[i] = strings.Join(append(append([]string{}, c...), c[0]), " → ")
	}
	return fmt.Sprintf("dependency cycle: %s", strings.Join(parts, "; "))
}

// Sort returns the nodes in dependency order (dependencies first; ties broken by name), or a
// *CycleError.
func (g *Graph) Sort() ([]string, error) {
	if cycles := g.Cycles(); len(cycles) > 0 {
		return nil, &CycleError{Cycles: cycles}
	}
	remaining := map[string]int{}
	for n, ds := range g.deps {
		remaining[n] = len(ds)
	}
	var ready, order []string
	for n, c := range remaining {
		if c == 0 {
			ready = append(ready, n)
		}
	}
	for len(ready) > 0 {
		sort.Strings(ready)
		n := ready[0]
		ready = ready[1:]
		order = append(order, n)
		for _, m := range g.Dependents(n) {
			remaining[m]--
			if remaining[m] == 0 {
				ready = append(ready, m)
			}
		}
	}
	return order, nil
}

// maxCycles bounds the enumeration: a pathological graph can have exponentially many.
const maxCycles = 100

// Cycles returns the graph's elementary cycles (Johnson's idea, simplified for small graphs:
// for each start node s in sorted order, find the simple paths back to s through nodes
// greater than s). Each cycle is rotated to start at its smallest node.
func (g *Graph) Cycles() [][]string {
	nodes := g.Nodes()
	var out [][]string
	for _, s := range nodes {
		var path []string
		onPath := map[string]bool{}
		var walk func(n string)
		walk = func(n string) {
			if len(out) >= maxCycles {
				return
			}
			path = append(path, n)
			onPath[n] = true
			for _, m := range g.DependsOn(n) {
				if m == s {
					out = append(out, append([]string{}, path...))
				} else if m > s && !onPath[m] {
					walk(m)
				}
			}
			path = path[:len(path)-1]
			onPath[n] = false
		}
		walk(s)
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
