{
  description = "n2d: one declarative service definition, rendered for every service manager and launched";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;

      # Linux only: the supervisor uses prctl and Linux process groups.
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # What cargo reads: the repository minus build and n2d outputs, so that
      # a local `n2d build` or `cargo build` does not change the source hash.
      source = lib.cleanSourceWith {
        src = lib.cleanSource ./.;
        filter = path: _type:
          !(builtins.elem (baseNameOf path) [ "target" ".n2d" "n2d-out" "result" ]);
      };

      n2dFor = pkgs: pkgs.rustPlatform.buildRustPackage {
        pname = "n2d";
        version = (lib.importTOML ./Cargo.toml).workspace.package.version;
        src = source;
        cargoLock.lockFile = ./Cargo.lock;

        # Only the tests that need nothing outside the build: the module
        # system, the engine and the cache. The root and rules tests run the
        # real consumers of every format (podman, systemd-analyze, honcho,
        # nix itself), which the build sandbox does not have; CI runs them.
        cargoTestFlags = [ "--package" "n2d-modules" "--package" "n2d-engine" "--package" "n2d-cache" ];

        meta = {
          description = "One declarative service definition, rendered for every service manager and launched";
          license = with lib.licenses; [ mit asl20 ];
          mainProgram = "n2d";
          platforms = lib.platforms.linux;
        };
      };
    in
    {
      # The Nix library (mkForce, mkIf, fromFlake, …), usable without nixpkgs.
      lib = import ./nix/lib.nix;

      # A flake-parts module: `perSystem.n2d.{services,modules,deployments}`
      # become the output `n2d.<system>`, read by `n2d.fromFlake`.
      flakeModules.default = ./nix/flake-module.nix;
      flakeModule = self.flakeModules.default;

      packages = forAllSystems (pkgs: rec {
        n2d = n2dFor pkgs;
        default = n2d;
      });

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = lib.getExe self.packages.${pkgs.stdenv.hostPlatform.system}.n2d;
          meta.description = "Run n2d";
        };
      });

      # The toolchain and the real consumers the tests run (TESTING.md), as
      # far as nixpkgs has them. Not here: a static /bin/busybox (the image
      # tests read that path) and docker-compose v1 (nixpkgs has v2, whose
      # `config` validates the same files).
      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [
            cargo
            rustc
            clippy
            rustfmt
            shellcheck
            honcho
            process-compose
            systemd
            nix
            skopeo
            umoci
            podman
            podman-compose
            docker-compose
            kubectl
            kubernetes-validate
            jq
          ];
        };
      });
    };
}
