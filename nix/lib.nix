# The n2d Nix library: the module-system properties that n2d understands,
# spelled as nixpkgs' `lib` spells them, so a module written with nixpkgs'
# `lib.mkForce` and one written with this file's `mkForce` mean the same.
# Usable without nixpkgs: `import ./nix/lib.nix`.
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

  mkOrder = priority: content: {
    _type = "order";
    inherit priority content;
  };
  mkBefore = mkOrder 500;
  defaultOrderPriority = 1000;
  mkAfter = mkOrder 1500;

  mkIf = condition: content:
    if builtins.isBool condition then {
      _type = "if";
      inherit condition content;
    } else
      throw "mkIf called with a non-Boolean condition";

  mkMerge = contents: {
    _type = "merge";
    inherit contents;
  };

  # An n2d reference `${{ path }}`, which a Nix string cannot hold
  # literally: `ref "self.package.out"`.
  ref = path: "\${{ ${path} }}";
}
