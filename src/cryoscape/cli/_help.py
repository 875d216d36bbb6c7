"""Long ``--help`` texts of the training commands (text only; the commands are cli/train_vae.py, cli/train_nn.py)."""

TRAIN_VAE_DIFFERENCES = """\
differences from cryoDRGN (same option names otherwise):
  contrast     images are used as they are (RELION CTF sign: protein white, as RELION/cryoSPARC write them);
               cryoDRGN inverts by default (its CTF has the opposite sign). --invert-data inverts;
               --uninvert-data is accepted and is our default.
  network      --enc-dim/--dec-dim default 256 (cryoDRGN 1024). --domain hartley (default; cryoDRGN's
               default is fourier) evaluates the network once per Hermitian pair (H(k), H(-k)): half of
               cryoDRGN's Hartley cost per image. --domain hartley_full is cryoDRGN's --domain hartley decoder
               (one value, evaluated at k and -k): twice our default's cost per image; its latent tends to
               organise in fewer epochs (measured figures: benchmarks/results/vs_cryodrgn*.json).
  batch        -b defaults to 8 on a CPU, as cryoDRGN's, and to 16 on a GPU, where it reaches cryoDRGN's
               accuracy soonest (larger batches run more images/s but learn less per epoch).
  seed         --seed defaults to 0, so a run is reproducible (cryoDRGN draws a random seed).
  lr           --lr defaults to 3e-4 for train-vae (cryoDRGN 1e-4): the default decoder's latent then organises
               in as few epochs as cryoDRGN's Hartley decoder's at 1e-4. train-nn keeps 1e-4.
  precision    automatic: bf16 autocast on GPUs of compute capability >= 8.0 (fp16 with loss scaling on older
               ones); on a CPU the faster of bf16 and fp32 for this model and batch, timed at the start of
               the run and cached per machine (--amp / --no-amp force one); fp32 weights and loss; the choice
               is kept in config.yaml (precision) for resumes. cryoDRGN uses AMP on GPUs only. Reruns and
               resumes with the same seed
               are bit-identical on the same machine (cryoscape runs Intel MKL in its alignment-independent
               mode, MKL_CBWR=AUTO,STRICT, unless MKL_CBWR is set).
  poses/CTF    read straight from a .star/.cs PARTICLES file (no parse step); --poses/--ctf also take .pkl.
  files        RUN/weights.N.pt, z.N.npz (mean, logvar, indices) with N = epochs completed (1, 2, ...);
               cryoDRGN numbers weights.N.pkl/z.N.pkl from 0. Resume with --resume RUN (cryoDRGN: --load).
  loss disc    radius D/2 lattice pixels (--loss-radius-px), the radius maps are decoded to; cryoDRGN: D/2.
  pose SGD     --refine-poses (cryoDRGN: train_nn --do-pose-sgd) learns a correction of every particle's
               rotation and shift from the input poses with the model, after --pose-warmup-epochs epochs on the
               input poses; each particle has its own Adam (step --pose-lr-px pixels, rotations measured as the
               movement of a point at the box edge), --pose-prior-px ties the poses to the input ones. The
               refined poses are written as RUN/poses.N.npz; write-star/write-cs --poses-from RUN export them."""

RUN_FOLDER = """\
run folder:
  A folder that already holds a run (config.yaml or weights.N.pt) is refused unless --resume continues it or
  --overwrite DELETES that run's config.yaml, run.log, provenance.yaml, weights.*.pt, z.*.npz,
  reconstruct.*.mrc, poses.*.npz and analyze.*/ first (other files are left alone). While training, RUN/.lock
  keeps a second training out of the folder; a lock left by a killed process is taken over with a warning.
  RUN/provenance.yaml records each invocation: command line, versions, host, start time, per-epoch wall time
  and loss (cryoscape view-config RUN shows it).

resume:
  --resume RUN continues RUN from its latest checkpoint, in RUN (-o not needed; -o OTHER continues into the
  empty folder OTHER). --resume RUN/weights.N.pt continues from epoch N; in RUN this needs --overwrite when
  later epochs exist (they are deleted). The run keeps its settings; these options may be given to change
  them, and each change is logged: -n, --checkpoint-every, --log-interval, --device, --lr, --wd, -b, --beta,
  --beta-schedule, --amp/--no-amp, --loss-radius-px, --volume-radius-px, --num-workers, --lazy,
  --max-memory-gb, --chunk-size, --datadir, --pose-lr-px, --pose-prior-px, --pose-warmup-epochs. Any other
  option (architecture, --zdim, --seed, PARTICLES, --poses, --ctf, --ind, --refine-poses, image preparation)
  must match the run's, or the resume is refused. Outputs missing next to a checkpoint (a kill between
  weights.N.pt and z.N.npz) are recomputed from it."""

TRAIN_VAE_DESCRIPTION = f"""\
Train a VAE for heterogeneous reconstruction with known poses and CTF (the cryoDRGN method): an encoder
maps each particle image to a latent distribution q(z|x), a coordinate MLP V(k, z) returns the Hartley
transform of the 3-D map at frequency k; images are modelled as CTF x central slice, shifted. Writes
RUN/config.yaml, run.log, provenance.yaml, weights.N.pt and z.N.npz (latent mean/log-variance, original
particle order) every --checkpoint-every epochs.

examples:
  cryoscape train-vae particles.star --zdim 8 -n 25 -o run/
  cryoscape train-vae particles.mrcs --poses pose.pkl --ctf ctf.pkl --zdim 8 --ind keep.pkl -o run/
  cryoscape train-vae --resume run/ -n 50                 # continue run/ to 50 epochs
  cryoscape train-vae --resume run/weights.10.pt --lr 3e-5 -o run_lowlr/   # branch from epoch 10
  torchrun --nproc_per_node 4 -m cryoscape.cli.main train-vae particles.star --zdim 8 -o run/

{RUN_FOLDER}

{TRAIN_VAE_DIFFERENCES}
"""

TRAIN_NN_DIFFERENCES = """\
differences from cryoDRGN train_nn (same option names otherwise):
  contrast     images are used as they are (RELION CTF sign: protein white, as RELION/cryoSPARC write them);
               cryoDRGN inverts by default (its CTF has the opposite sign). --invert-data inverts;
               --uninvert-data is accepted and is our default.
  network      --dec-dim (alias --dim) default 256, --dec-layers (alias --layers). --domain hartley (default)
               evaluates the network once per Hermitian pair (H(k), H(-k)); --domain hartley_full is
               cryoDRGN's Hartley decoder (one value, evaluated at k and -k); --domain fourier is cryoDRGN's
               Fourier decoder.
  seed         --seed defaults to 0, so a run is reproducible (cryoDRGN draws a random seed).
  precision    --amp (default on): bf16 autocast on CPUs with native bf16 and on GPUs, fp32 weights and loss.
  poses/CTF    read straight from a .star/.cs PARTICLES file (no parse step); --poses/--ctf also take .pkl.
  files        RUN/weights.N.pt and reconstruct.N.mrc with N = epochs completed (1, 2, ...); cryoDRGN numbers
               weights.N.pkl/reconstruct.N.mrc from 0. Resume with --resume RUN (cryoDRGN: --load).
  loss disc    radius D/2 - 1 lattice pixels (--loss-radius-px); cryoDRGN uses D/2 on its (D+1) lattice.
  pose SGD     --refine-poses (cryoDRGN: --do-pose-sgd) learns a correction of every particle's rotation and
               shift with the map (see train-vae --help); RUN/poses.N.npz, write-star --poses-from RUN."""

TRAIN_NN_DESCRIPTION = f"""\
Train a coordinate MLP V(k) returning the Hartley transform of one 3-D map, from particle images with known
poses and CTF (the homogeneous mode of cryoDRGN). Writes RUN/config.yaml, run.log, provenance.yaml, and every
--checkpoint-every epochs weights.N.pt and reconstruct.N.mrc (the map, with the voxel size in its header).
Accuracy against a voxel back-projection: benchmarks/results/accuracy_homogeneous.json.

examples:
  cryoscape train-nn particles.star -n 20 -o run_nn/
  cryoscape train-nn particles.mrcs --poses pose.pkl --ctf ctf.pkl --dec-dim 512 -o run_nn/
  cryoscape train-nn --resume run_nn/ -n 40                 # continue run_nn/ to 40 epochs
  cryoscape train-nn particles.star -n 20 -o run_nn/ --overwrite   # start run_nn/ over

{RUN_FOLDER.replace("weights.N.pt and z.N.npz", "weights.N.pt and reconstruct.N.mrc").replace("--zdim, ", "")}

{TRAIN_NN_DIFFERENCES}
"""
