//! Certificates generated with rcgen and an HTTPS client over real sockets.
