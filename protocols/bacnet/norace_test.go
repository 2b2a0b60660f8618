//go:build !race

package bacnet

const raceEnabled = false
