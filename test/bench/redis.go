package main

import (
	"os"

	"github.com/shopstream/shopstream/internal/redistest"
)

// startRedis starts a real redis-server on a free loopback port with
// persistence off (internal/redistest) in a temporary directory; stop
// kills it and removes the directory.
func startRedis() (srv *redistest.Server, stop func(), err error) {
	dir, err := os.MkdirTemp("", "shopstream-bench-redis-")
	if err != nil {
		return nil, nil, err
	}
	srv, err = redistest.Launch(dir, redistest.Options{})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return srv, func() {
		srv.Stop()
		os.RemoveAll(dir)
	}, nil
}
