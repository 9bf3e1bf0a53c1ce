package collector

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

func TestShardsCoverEveryProjectExactlyOnce(t *testing.T) {
	var projects []string
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) {
		for i := range 100 {
			projects = append(projects, h.sim.AddProject(fmt.Sprintf("Project %03d", i)))
		}
	})
	for _, n := range []int{1, 2, 3, 7} {
		owner := map[string]int{}
		sizes := make([]int, n)
		for i := range n {
			if err := h.start(Config{ShardCount: n, ShardIndex: i}); err != nil {
				t.Fatal(err)
			}
			h.mustPoll()
			for _, m := range h.family("activepieces_project_info") {
				id := label(m, "project_id")
				if prev, dup := owner[id]; dup {
					t.Errorf("%d shards: project %s polled by shards %d and %d", n, id, prev, i)
				}
				owner[id] = i
				sizes[i]++
			}
		}
		if len(owner) != len(projects) {
			t.Errorf("%d shards cover %d of %d projects", n, len(owner), len(projects))
		}
		for i, s := range sizes {
			if n > 1 && (s < 100/n/3 || s > 3*100/n) {
				t.Errorf("%d shards: shard %d has %d projects, far from an even split %v", n, i, s, sizes)
			}
		}
	}
	// The hash is part of the contract (README): changing it would move projects between running
	// replicas. FNV-1a 64 of "w0UMzSmue5InrQO2LTBRI" is 17033577084423427195.
	for _, tc := range []struct {
		id           string
		count, shard int
	}{{"w0UMzSmue5InrQO2LTBRI", 4, 3}, {"w0UMzSmue5InrQO2LTBRI", 3, 1}, {"R7hKp2VxN4cQe9LmT1sWz", 4, 1}, {"R7hKp2VxN4cQe9LmT1sWz", 1, 0}} {
		if got := ShardOf(tc.id, tc.count); got != tc.shard {
			t.Errorf("ShardOf(%s, %d) = %d, want %d", tc.id, tc.count, got, tc.shard)
		}
	}
}

func TestShardConfigErrors(t *testing.T) {
	for _, tc := range []struct{ count, index int }{{2, 2}, {-1, 0}, {0, 1}, {3, -1}} {
		_, err := Config{ShardCount: tc.count, ShardIndex: tc.index}.WithDefaults()
		want := fmt.Sprintf("shard index must be in [0, shard count), got index %d of %d", tc.index, tc.count)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("count %d index %d: err = %v", tc.count, tc.index, err)
		}
	}
}

// After --shard.count changes, a replica restored from its state file drops the projects that
// now belong to another shard instead of polling them twice.
func TestStateOfProjectsMovedToAnotherShardIsDropped(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	var projects []string
	h := newHarness(t, simulator.Options{}, Config{StateFile: state, ServerURL: "sim"}, func(h *harness) {
		for i := range 20 {
			projects = append(projects, h.sim.AddProject(fmt.Sprintf("Project %02d", i)))
		}
	})
	h.mustPoll()
	// Configured projects (no discovery to drop them): the state alone decides.
	if err := h.start(Config{Projects: projects, StateFile: state, ServerURL: "sim", ShardCount: 2, ShardIndex: 1}); err != nil {
		t.Fatal(err)
	}
	h.mustPoll()
	got := map[string]bool{}
	for _, m := range h.family("activepieces_project_info") {
		got[label(m, "project_id")] = true
	}
	for _, id := range projects {
		if got[id] != (ShardOf(id, 2) == 1) {
			t.Errorf("project %s (shard %d) served by shard 1: %v", id, ShardOf(id, 2), got[id])
		}
	}
}
