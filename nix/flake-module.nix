# A flake-parts module (n2d's `flakeModules.default`): a flake declares
#
#   perSystem = { pkgs, ... }: {
#     n2d.services.api = { command = [ "api" ]; ports.http = 8080; };
#     n2d.deployments.dev.services = [ ":api" ];
#   };
#
# and gets the output `n2d.<system>`, which has the structure of an n2d
# module file. An `n2d.nix` next to the flake reads it with the n2d library:
#
#   { n2d, ... }: n2d.fromFlake ./.
#
# Inside an entry the values are n2d's, not the flake's: `mkForce` or `mkIf`
# written inside a service reach n2d as data (the nixpkgs `_type` encoding)
# and act in n2d's merge, where workspace imports and deployments take part.
# Only a property around a whole entry (`n2d.services.api = mkIf c { … }`)
# is decided here, by the flake's module system. Several definitions of one
# entry are joined by `joinDefinitions` (see lib.nix).
{ lib, flake-parts-lib, ... }:
let
  n2d = import ./lib.nix;
  inherit (lib) mkOption types;

  definition = lib.mkOptionType {
    name = "n2dDefinition";
    description = "n2d definition table";
    check = builtins.isAttrs;
    merge = _loc: defs: n2d.joinDefinitions (map (def: def.value) defs);
  };

  entries = what: example: mkOption {
    type = types.attrsOf definition;
    default = { };
    inherit example;
    description = ''
      The ${what} of this system's n2d module file, by name, in n2d's own
      structure (the same keys as an `n2d.toml`).
    '';
  };
in
flake-parts-lib.mkTransposedPerSystemModule {
  name = "n2d";
  file = ./flake-module.nix;
  option = mkOption {
    type = types.submodule {
      options = {
        services = entries "services" {
          api = {
            command = [ "./bin/api" ];
            ports.http = 8080;
          };
        };
        modules = entries "reusable partial services (imported with `imports`)" {
          http.options.http.port = {
            type = "port";
            default = 8080;
          };
        };
        deployments = entries "deployments" {
          dev.services = [ ":api" ];
        };
      };
    };
    default = { };
    description = ''
      An n2d module file for this system. The flake exposes it as
      `n2d.<system>`; n2d reads it through an `n2d.nix` holding
      `{ n2d, ... }: n2d.fromFlake ./.`.
    '';
  };
}
