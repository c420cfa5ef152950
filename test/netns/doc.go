// Package netns runs real daemons in network namespaces joined by a
// bridge (root only): button pairing, calls across the bridge, and finding
// a peer again by its key after its address changed.
package netns
