// Package buildroot holds checks of the BR2_EXTERNAL tree in buildroot/ that
// run without buildroot: the symbols and files it names exist, the package
// recipe (evaluated by GNU make) matches the repository, and it agrees with
// systemd/ on the user, its groups and the state directory. check-real.sh
// checks the same tree against a real buildroot checkout and records, in
// testdata/buildroot.txt, the buildroot facts these tests rely on.
package buildroot
