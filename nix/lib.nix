# The n2d Nix library: the module-system properties that n2d understands,
# spelled as nixpkgs' `lib` spells them, so a module written with nixpkgs'
# `lib.mkForce` and one written with this file's `mkForce` mean the same.
# Usable without nixpkgs: `import ./nix/lib.nix`.
#
# An `n2d.nix` module file that is a function receives this set as `n2d`:
#   { n2d, ... }: { services.api.env.RUST_LOG = n2d.mkForce "warn"; }
rec {
  mkOverride = priority: content: {
    _type = "override";
    inherit priority content;
  };
  mkOptionDefault = mkOverride 1500;
  mkDefault = mkOverride 1000;
  mkImageMediaOverride = mkOverride 60;
  mkForce = mkOverride 50;
  mkVMOverride = mkOverride 10;
  # The priority of a definition without mkOverride (nixpkgs' name).
  defaultOverridePriority = 100;

  mkOrder = priority: content: {
    _type = "order";
    inherit priority content;
  };
  mkBefore = mkOrder 500;
  defaultOrderPriority = 1000;
  mkAfter = mkOrder 1500;

  # nixpkgs only checks the condition when the module system discharges the
  # property; n2d reads JSON, so a bad condition fails here, in Nix, where
  # the user can see which expression produced it.
  mkIf = condition: content:
    if builtins.isBool condition then {
      _type = "if";
      inherit condition content;
    } else
      throw "mkIf called with a non-Boolean condition";

  # As nixpkgs' mkAssert: the content when the assertion holds, else an
  # evaluation error carrying the message.
  mkAssert = assertion: message: content:
    mkIf (if assertion then true else throw "\nFailed assertion: ${message}")
    content;

  mkMerge = contents: {
    _type = "merge";
    inherit contents;
  };

  # An n2d reference, `${{ path }}`, which Nix strings cannot spell directly
  # (`"${{"` starts a Nix interpolation): `ref "self.ports.http"`, or inside
  # a string, "postgres://${n2d.ref "//db:postgres.address.pg"}/app".
  ref = path: "\${{ ${path} }}";

  # The `n2d.<system>` output of a flake, which is an n2d module file's
  # structure (`services`, `modules`, `deployments`), for the system Nix runs
  # on. `flake` is a path (`./.`), a flake reference string, or a flake
  # already loaded (`builtins.getFlake …`, a flake input). A path inside a
  # git repository sees only the files git tracks, as every flake does.
  fromFlake = fromFlakeFor builtins.currentSystem;

  # `fromFlake` for a given system, e.g. "aarch64-linux".
  fromFlakeFor = system: flake:
    let
      loaded =
        if builtins.isAttrs flake then flake
        else if builtins ? getFlake then builtins.getFlake (toString flake)
        else throw "fromFlake needs Nix's flakes feature: add `experimental-features = nix-command flakes` to nix.conf";
      described = if builtins.isAttrs flake then "the given flake" else "the flake ${toString flake}";
    in
    if !(loaded ? n2d) then
      throw "${described} has no `n2d` output: declare perSystem.n2d with n2d's flakeModules.default, or set outputs.n2d.${system}"
    else if !(loaded.n2d ? ${system}) then
      throw "${described} has no `n2d.${system}` output (it has: ${builtins.concatStringsSep ", " (builtins.attrNames loaded.n2d)})"
    else
      loaded.n2d.${system};

  # Joins several definitions of one service, module or deployment (as the
  # flake-parts module receives them from several modules) into one value
  # that n2d merges with its own rules, deciding nothing n2d would decide
  # differently: tables join by key, plain lists concatenate (as n2d
  # concatenates lists of one priority), equal values collapse to one, and
  # anything else -- differing scalars, properties such as mkForce, a mix --
  # becomes mkMerge, so n2d's priorities apply and its conflict errors show.
  joinDefinitions = values:
    let
      first = builtins.head values;
      isTable = v: builtins.isAttrs v && !(v ? _type) && (v.type or null) != "derivation";
    in
    if values == [ ] then throw "joinDefinitions needs at least one definition"
    else if builtins.length values == 1 then first
    else if builtins.all isTable values then
      builtins.zipAttrsWith (_name: joinDefinitions) values
    else if builtins.all builtins.isList values then
      builtins.concatLists values
    else if builtins.all (v: v == first) values then first
    else mkMerge values;
}
