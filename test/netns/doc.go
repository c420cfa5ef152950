// Package netns runs real daemons in network namespaces (root only): on a
// bridge, button pairing, calls across it, and finding a peer again by its
// key after its address changed; and two houses joined only by a
// WireGuard tunnel over a link with 50 ms of delay, paired by hand, that
// call each other through it.
package netns
