# The program: a script that prints the greeting package's words, then the
# arguments and environment n2d gives it. Its closure is two store paths,
# itself and ./greeting.nix's output, which the oci target puts in two
# layers.
let
  greeting = import ./greeting.nix;
in
builtins.derivation {
  name = "nix-hello-1.0";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" ''
    export PATH=/usr/bin:/bin
    mkdir -p "$out/bin"
    cat > "$out/bin/nix-hello" <<SCRIPT
    #!/bin/sh
    read -r words < ${greeting}/share/greeting
    echo "\$words, \$WHO (\$*)"
    exec sleep "\''${HOLD:-0}"
    SCRIPT
    chmod +x "$out/bin/nix-hello"
  '' ];
}
