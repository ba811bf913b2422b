//! An in-process S3 server (s3s + s3s-fs) with request counting and fault injection.
