{
  "targets": [
    {
      "target_name": "peer_cred",
      "sources": ["native/peer_cred.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
