#pragma once
/// @file infield.h
/// @brief Everything of the core library in one include.

#include "infield/checks.h"
#include "infield/domain.h"
#include "infield/energy.h"
#include "infield/error.h"
#include "infield/field.h"
#include "infield/harmonic.h"
#include "infield/likelihood.h"
#include "infield/linear_operators.h"
#include "infield/npy.h"
#include "infield/operator.h"
#include "infield/pointwise.h"
#include "infield/prior_transforms.h"
