# R surveillance peers for the detector evaluation: one process for many series (R's start-up costs a second).
#
#   Rscript surveillance_peers.R <folder>
#
# <folder> holds what sahel_pipeline/core/evaluation/surveillance.py wrote:
#   series.csv    series_id, count   (each series' months in order)
#   jobs.csv      peer, series_id, t (1-based months each peer judges)
#   controls.csv  peer, key, value, type (numeric | logical | character)
# and receives results.csv: peer, series_id, t, alarm, upperbound, pvalue, expected, dispersion.
# Progress and per-series errors go to stderr as "progress <peer> <done> <total>" and "error <peer> <series>: <msg>".

suppressMessages(library(surveillance))

folder <- commandArgs(trailingOnly = TRUE)[1]
series <- read.csv(file.path(folder, "series.csv"), colClasses = c("character", "numeric"))
jobs <- read.csv(file.path(folder, "jobs.csv"), colClasses = c("character", "character", "integer"))
controls <- read.csv(file.path(folder, "controls.csv"), colClasses = "character")
counts <- split(series$count, factor(series$series_id, levels = unique(series$series_id)))

# A peer's control list; a key "a$b" is element b of list a (glrnb's mu0 model).
control_of <- function(peer) {
  rows <- controls[controls$peer == peer & controls$key != "kind", ]
  out <- list()
  for (i in seq_len(nrow(rows))) {
    value <- rows$value[i]
    value <- switch(rows$type[i],
      numeric = as.numeric(strsplit(value, ",")[[1]]),
      logical = as.logical(value),
      character = value)
    path <- strsplit(rows$key[i], "$", fixed = TRUE)[[1]]
    if (length(path) == 2) {
      if (is.null(out[[path[1]]])) out[[path[1]]] <- list()
      out[[path[1]]][[path[2]]] <- value
    } else {
      out[[rows$key[i]]] <- value
    }
  }
  out
}
monthly <- function(y) sts(observed = y, frequency = 12, start = c(2000, 1))
result <- function(peer, id, t, alarm, upperbound, pvalue = NA, expected = NA, dispersion = NA) {
  data.frame(peer = peer, series_id = id, t = t, alarm = as.logical(alarm), upperbound = as.numeric(upperbound),
             pvalue = as.numeric(pvalue), expected = as.numeric(expected), dispersion = as.numeric(dispersion))
}

run_farrington <- function(peer, id, y, t) {
  # farringtonFlexible sizes its outputs by length(range) but indexes them by k - min(range) + 1: a range with gaps
  # fails ("subscript out of bounds"), so each run of consecutive months is its own call
  runs <- split(t, cumsum(c(1, diff(t) != 1)))
  do.call(rbind, lapply(runs, function(range) {
    fit <- farringtonFlexible(monthly(y), control = c(control_of(peer), list(range = range)))
    result(peer, id, range, alarms(fit), upperbound(fit), fit@control$pvalue, fit@control$expected)
  }))
}

run_glrnb <- function(peer, id, y, t) {
  control <- control_of(peer)
  phase1 <- control$phase1
  control$phase1 <- NULL
  first <- min(t) - min(phase1, min(t) - 1)
  x <- y[first:length(y)]
  # mu0 as a list: the package fits glm.nb on the months before `range` and sets alpha from its theta
  fit <- suppressWarnings(glrnb(monthly(x), control = c(control, list(range = t - first + 1))))
  result(peer, id, t, alarms(fit), upperbound(fit), NA, fit@control$mu0, fit@control$alpha)
}

run_ears <- function(peer, id, y, t) {
  control <- c(control_of(peer), list(range = t))
  fit <- earsC(monthly(y), control = control)
  centre <- NA
  if (control$method != "C3") {
    # alpha = 0.5 puts the bound at the reference months' mean; with the bound at alpha it gives their sd
    centre <- upperbound(earsC(monthly(y), control = modifyList(control, list(alpha = 0.5))))
  }
  result(peer, id, t, alarms(fit), upperbound(fit), NA, centre)
}

runners <- list(farrington = run_farrington, glrnb = run_glrnb, ears = run_ears)
peers <- unique(jobs$peer)
output <- file.path(folder, "results.csv")
first_write <- TRUE
for (peer in peers) {
  kind <- controls$value[controls$peer == peer & controls$key == "kind"]
  run <- runners[[kind]]
  mine <- jobs[jobs$peer == peer, ]
  ids <- unique(mine$series_id)
  step <- max(1, length(ids) %/% 4)
  rows <- list()
  for (i in seq_along(ids)) {
    id <- ids[i]
    t <- mine$t[mine$series_id == id]
    rows[[length(rows) + 1]] <- tryCatch(
      suppressMessages(run(peer, id, counts[[id]], t)),
      error = function(e) {
        message(sprintf("error %s %s: %s", peer, id, gsub("[\r\n]+", " ", conditionMessage(e))))
        NULL
      })
    if (i %% step == 0 || i == length(ids)) message(sprintf("progress %s %d %d", peer, i, length(ids)))
  }
  rows <- do.call(rbind, rows)
  if (!is.null(rows)) {
    write.table(rows, output, sep = ",", row.names = FALSE, col.names = first_write, append = !first_write, na = "")
    first_write <- FALSE
  }
}
if (first_write) writeLines("peer,series_id,t,alarm,upperbound,pvalue,expected,dispersion", output)
