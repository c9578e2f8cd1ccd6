{
  "targets": [
    {
      "target_name": "udp_ring",
      "sources": [
        "native/addon.cc",
        "native/direct_receive.cc",
        "native/receiver.cc",
        "native/receiver_socket.cc",
        "native/receive_batch.cc",
        "native/receive_loop.cc",
        "native/ring_writer.cc",
        "native/sender.cc",
        "native/socket.cc",
        "native/socket_setup.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-exceptions", "-fvisibility=hidden"],
      "conditions": [
        ["OS!='linux'", { "sources!": ["native/addon.cc", "native/direct_receive.cc", "native/receiver.cc", "native/receiver_socket.cc", "native/receive_batch.cc", "native/receive_loop.cc", "native/ring_writer.cc", "native/sender.cc", "native/socket.cc", "native/socket_setup.cc"] }],
        ["'<!(echo $UDP_RING_SANITIZE)'!=''", {
          "defines": ["UDP_RING_SELFCHECK"],
          "cflags": ["-fsanitize=<!(echo $UDP_RING_SANITIZE)", "-fno-omit-frame-pointer", "-g"],
          "cflags_cc": ["-fsanitize=<!(echo $UDP_RING_SANITIZE)", "-fno-omit-frame-pointer", "-g"],
          "ldflags": ["-fsanitize=<!(echo $UDP_RING_SANITIZE)"]
        }]
      ]
    }
  ]
}
