//go:build race

// Package racedetector tells tests whether the binary was built with the race detector,
// which makes sync.Pool drop items at random: allocation counts of pooled paths mean
// nothing under it.
package racedetector

// Enabled reports whether the race detector is on.
const Enabled = true
