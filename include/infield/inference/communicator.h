#pragma once
/// @file inference/communicator.h
/// @brief The few MPI collectives Infield uses (MGVI samples over ranks, gradient all-reduce in
/// training) behind one class. inference/communicator.cpp is the only file that includes mpi.h;
/// built without MPI (INFIELD_WITH_MPI=OFF), or run without an MPI launcher, every communicator is
/// the single process and every collective is the identity.
///
/// Sums are reproducible: each rank contributes its partial sum, the partial sums are gathered to
/// every rank and added there in rank order. All ranks therefore hold bitwise the same result, and
/// a given number of ranks gives the same result on every run, whatever the timing; the result
/// differs from one process's only by the rounding of a different summation order.

#include <Eigen/Core>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace infield {

class Communicator {
 public:
  /// The single process.
  Communicator();
  /// All ranks of the program (MPI_COMM_WORLD) once an MpiSession is active, else the single
  /// process.
  static Communicator world();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }

  /// The sum over ranks of `local`, added in rank order; every rank receives it.
  double sum(double local) const;
  std::int64_t sum(std::int64_t local) const;
  /// Element-wise sum over ranks in rank order, in place; every rank must pass the same size.
  void sum_in_place(Eigen::VectorXd& values) const;
  /// Element-wise sum over ranks of a float vector (gradients in training), in place, by one
  /// MPI_Allreduce: every rank receives the same result (MPI_Allreduce is MPI_Reduce followed by
  /// a broadcast in effect; two ranks add a + b and b + a, the same bits); a different number of
  /// ranks changes only the rounding.
  void sum_in_place(Eigen::Ref<Eigen::VectorXf> values) const;
  /// True on every rank if `flag` is true on any.
  bool any(bool flag) const;
  /// Every rank's vectors (all of size `length`), concatenated in rank order; ranks may contribute
  /// different numbers of vectors, including none.
  std::vector<Eigen::VectorXd> all_gather(const std::vector<Eigen::VectorXd>& local,
                                          Eigen::Index length) const;
  /// `bytes` of rank `root` on every rank.
  void broadcast(std::string& bytes, int root = 0) const;
  void barrier() const;
  /// This rank's share [begin, end) of `count` items dealt in contiguous blocks whose sizes differ
  /// by at most one (the first ranks get the larger blocks).
  std::pair<int, int> share(int count) const;
  /// The sum of `count` items dealt by share(count), each a vector of `length`: `local` holds this
  /// rank's items in order. They are added along one fixed binary tree over the item indices
  /// (pairwise summation), each node on the rank that owns its first item, so every rank receives
  /// the same bits for any number of ranks, one process included: results do not depend on how
  /// the work is dealt. Per rank it sends and receives about one vector per tree level it shares
  /// with other ranks, then the root's sum is broadcast.
  Eigen::VectorXd tree_sum(const std::vector<Eigen::VectorXd>& local, int count,
                           Eigen::Index length) const;
  /// Ends every rank of the communicator with exit status `code` (MPI_Abort): the way out when one
  /// rank fails and the others would wait for it in a collective. The single process exits.
  [[noreturn]] void abort(int code) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
  int rank_ = 0;
  int size_ = 1;
};

/// MPI for the lifetime of the object: MPI_Init_thread (funneled: only the thread that created
/// the session calls MPI; oneTBB workers never do) when the program was started by an MPI launcher
/// (mpirun, mpiexec, srun; detected from their environment variables), MPI_Finalize at the end.
/// Without a launcher, or without MPI support, it does nothing and Communicator::world() is the
/// single process. At most one session per program.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  /// True if this build has MPI support.
  static bool supported();
  /// True if MPI was initialised by this session.
  bool active() const { return active_; }

 private:
  bool active_ = false;
};

}  // namespace infield
