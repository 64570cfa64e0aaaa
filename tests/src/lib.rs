//! Black-box tests of the built daemon and client live here once the daemon lands.
