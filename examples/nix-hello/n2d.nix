# Services whose program is a Nix derivation, in a module file written in
# Nix. n2d evaluates it with `nix-instantiate --eval --strict --json`,
# passing its library (nix/lib.nix) as `n2d`; the result means what the
# same structure in n2d.toml means.
#
#   n2d build //examples/nix-hello:dev
#   n2d show //examples/nix-hello:greeter --deployment //examples/nix-hello:dev
{ n2d, ... }:
{
  services.hello = {
    description = "Runs the derivation's main program, as `nix run` would";
    # Built with nix-build; with no `command`, the program is
    # bin/<meta.mainProgram, pname or name> of its output: bin/nix-hello.
    package = toString ./hello.nix;
    env.WHO = n2d.mkDefault "world";
  };

  services.greeter = {
    description = "Runs it with arguments, naming the output path";
    package = toString ./hello.nix;
    # `${{ }}` is n2d's, so Nix must not read it: n2d.ref writes it.
    command = [ "${n2d.ref "self.package.out"}/bin/nix-hello" "from" "greeter" ];
    env.WHO = n2d.mkDefault "world";
    depends_on.":hello" = "started";
  };

  deployments.dev = {
    targets = [ "procfile" "systemd" "oci" "nixos" ];
    services = {
      ":hello" = { };
      ":greeter" = { env.WHO = n2d.mkForce "Nix users"; };
    };
  };
}
