# A data package: the words nix-hello says. Built offline by /bin/sh, with
# no nixpkgs, as nix2dream's examples did with builtins.derivation.
builtins.derivation {
  name = "greeting-1.0";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" ''
    export PATH=/usr/bin:/bin
    mkdir -p "$out/share"
    echo "Hello from a Nix derivation" > "$out/share/greeting"
  '' ];
}
