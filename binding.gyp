{
  "targets": [
    {
      "target_name": "ttalloc_native",
      "sources": ["native/ttalloc_native.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
